"""`tradebot replay`: recordings through the whole pipeline under a simulated clock."""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import uvloop

from tradebot.cli.exits import EX_OK
from tradebot.config import Config, StrategyConfig
from tradebot.errors import ConfigError, DataError


def replay(config: Config, args: argparse.Namespace) -> int:
    """Play the recordings into a temporary (or `--db`) store; print the summary."""
    from tradebot.app import App
    from tradebot.clock import SimClock
    from tradebot.feeds.replay import inspect

    recordings = [inspect(p, args.venue) for p in args.files]
    feed_instruments, recorded = replay_instruments(config, recordings)
    with tempfile.TemporaryDirectory(prefix="tradebot-replay-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'replay.sqlite3'}"
        config = dataclasses.replace(config, state=dataclasses.replace(config.state,
                                                                       database_url=url))
        if args.strategy:
            config = dataclasses.replace(config, strategies=[
                StrategyConfig(name=args.strategy, kind=args.strategy)])
        app = App(config, SimClock(), feed_instruments=feed_instruments, instruments=recorded)
        summary = uvloop.run(app.run_replay(recordings, speed=args.speed,
                                            progress=False if args.no_progress else None))
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            if key != "books":
                print(f"{key:>20}: {value}")
    return EX_OK


def replay_instruments(config: Config, recordings: list[Any]) -> tuple[dict[str, list[Any]],
                                                                        dict[Any, Any]]:
    """Return the instruments each recording's books need, by venue, and those not configured.

    [[instruments]] first, else the recording's own instrument list.
    """
    from tradebot.feeds.registry import feed_class

    instruments = config.instrument_map()
    by_symbol = {(i.id.venue, i.venue_symbol): i for i in instruments.values()}
    feed_instruments: dict[str, list[Any]] = {}
    recorded: dict[Any, Any] = {}  # instruments a recording's own instrument list describes
    for rec in recordings:
        own = {i.venue_symbol: i for i in rec.instruments}
        if rec.framing != "hftbacktest" and not rec.depth_symbols:
            # No instrument list in or beside the recording: match the configured ones.
            configured = [i for i in instruments.values() if i.id.venue == rec.venue]
            rec.depth_symbols = [i.venue_symbol for i in feed_class(rec.venue)
                                 .recorded_instruments(rec.subscribed, configured)]
            if not rec.depth_symbols:
                raise DataError(f"{rec.path}: none of its subscriptions is in [[instruments]] "
                                f"for {rec.venue}")
        for sym in rec.depth_symbols:
            inst = by_symbol.get((rec.venue, sym)) or own.get(sym)
            if inst is not None and inst.id not in instruments:
                recorded[inst.id] = inst
            if inst is None:
                raise ConfigError(f"{rec.path}: {sym} on {rec.venue} has no [[instruments]] entry",
                                  key="instruments", source=config.source)
            if inst not in feed_instruments.setdefault(rec.venue, []):
                feed_instruments[rec.venue].append(inst)
    return feed_instruments, recorded
