"""`tradebot replay`: recordings through the whole pipeline under a simulated clock."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import uvloop

from tradebot.cli.exits import EX_DATAERR, EX_OK
from tradebot.config import Config, StrategyConfig


def replay(config: Config, args: argparse.Namespace) -> int:
    """Play the recordings into a temporary (or `--db`) store; print the summary.

    Exit 65 (after the summary) when a recording was damaged: what came before the damage,
    and the files after it, played.
    """
    from tradebot.app import App
    from tradebot.clock import SimClock
    from tradebot.feeds.instruments import replay_instruments
    from tradebot.feeds.replay import inspect

    recordings = [inspect(p, args.venue) for p in args.files]
    instruments = replay_instruments(config, recordings)
    with tempfile.TemporaryDirectory(prefix="tradebot-replay-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'replay.sqlite3'}"
        config = dataclasses.replace(config, state=dataclasses.replace(config.state,
                                                                       database_url=url))
        if args.strategy:
            config = dataclasses.replace(config, strategies=[
                StrategyConfig(name=args.strategy, kind=args.strategy)])
        app = App(config, SimClock(), instruments=instruments)
        summary = uvloop.run(app.run_replay(recordings, speed=args.speed,
                                            progress=False if args.no_progress else None))
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            if key != "books":
                print(f"{key:>20}: {value}")
    return EX_DATAERR if summary["damaged"] else EX_OK
