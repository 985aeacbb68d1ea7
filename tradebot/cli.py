"""`tradebot run | replay | record | serve-recording | features | check-config | version`.

Exit codes: 0 ok; 1 a broken invariant or unexpected error (systemd restarts); 2 usage;
65 bad input data (EX_DATAERR); 66 missing input file (EX_NOINPUT); 78 bad config (EX_CONFIG,
which the unit does not restart on).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
import uvloop

from tradebot import __version__
from tradebot.config import Config, default_config_path, load_config
from tradebot.errors import ConfigError, DataError, InvariantError
from tradebot.log import setup_logging

EX_OK, EX_SOFTWARE, EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CONFIG = 0, 1, 2, 65, 66, 78

log = structlog.get_logger("tradebot.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tradebot", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults, "
                   "$TRADEBOT_CONFIG or $CONFIGURATION_DIRECTORY/tradebot.toml)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the daemon on live feeds")
    rp = sub.add_parser("replay", help="play recordings through the whole pipeline")
    rp.add_argument("files", nargs="+", type=Path, help="recordings, played in order")
    rp.add_argument("--venue", help="venue of the recordings (default: detected)")
    rp.add_argument("--speed", type=float, default=0.0,
                    help="multiple of real time (default 0: as fast as possible)")
    rp.add_argument("--json", action="store_true", help="print one JSON summary object")
    rp.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.add_argument("--strategy", metavar="KIND",
                    help="run only this strategy kind with default params (e.g. quoting)")
    rec = sub.add_parser("record", help="record a venue's raw frames and REST snapshots")
    rec.add_argument("--venue", required=True, help="venue to record")
    rec.add_argument("--symbols", nargs="+", required=True, help="normalized symbols")
    rec.add_argument("--out", type=Path, required=True, help="directory for the gzip files")
    rec.add_argument("--duration", type=float, default=0.0,
                     help="seconds to record (default 0: until SIGINT/SIGTERM)")
    rec.add_argument("--ws-url", default="", help="websocket URL (default: the venue's)")
    rec.add_argument("--rest-url", default="", help="REST base URL (default: the venue's)")
    srv = sub.add_parser("serve-recording",
                         help="serve a recording on 127.0.0.1 in the venue's own protocol")
    srv.add_argument("file", type=Path, help="the recording")
    srv.add_argument("--venue", help="venue of the recording (default: detected)")
    srv.add_argument("--ws-port", type=int, default=8765)
    srv.add_argument("--http-port", type=int, default=8766)
    srv.add_argument("--speed", type=float, default=1.0,
                     help="multiple of recorded time (default 1)")
    srv.add_argument("--fps", type=float, default=0.0,
                     help="frames per second instead of recorded time")
    fp = sub.add_parser("features", help="bar indicators of an OHLCV CSV (date,open,high,"
                        "low,close,volume), one column each")
    fp.add_argument("file", type=Path, help="candles CSV, optionally gzip-compressed")
    fp.add_argument("--out", type=Path, help="output CSV (default: stdout)")
    fp.add_argument("--incremental", action="store_true",
                    help="compute through the incremental kernel (same output as the batch)")
    cc = sub.add_parser("check-config", help="validate a config file and exit")
    cc.add_argument("path", nargs="?", type=Path, help="config file (default: as for run)")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"tradebot {__version__}")
        return EX_OK
    if args.command == "features":
        return _features(args)
    path = args.config
    if args.command == "check-config" and args.path is not None:
        path = args.path
    try:
        config = load_config(path if path is not None else default_config_path())
    except ConfigError as exc:
        print(f"tradebot: config error: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.command == "check-config":
        print(f"config ok: {config.source}")
        return EX_OK
    quiet = args.command == "replay" and args.json
    setup_logging("warning" if quiet else config.log.level, config.log.format,
                  sys.stderr if args.command == "replay" else None)
    return _guarded(config, args)


def _guarded(config: Config, args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return _run(config)
        if args.command == "record":
            return _record(config, args)
        if args.command == "serve-recording":
            return _serve_recording(config, args)
        return _replay(config, args)
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return EX_CONFIG
    except FileNotFoundError as exc:
        log.error("input_missing", error=str(exc))
        return EX_NOINPUT
    except DataError as exc:
        log.error("input_invalid", error=str(exc))
        return EX_DATAERR
    except InvariantError as exc:
        log.critical("invariant_broken", error=str(exc), exc_info=exc)
        return EX_SOFTWARE
    except ExceptionGroup as group:
        # A task of the live TaskGroup failed: report the first cause, exit non-zero.
        log.critical("service_failed", error=repr(group.exceptions[0]), exc_info=group)
        return EX_SOFTWARE


def _features(args: argparse.Namespace) -> int:
    from tradebot.features_cli import run

    try:
        run(args.file, args.out, args.incremental)
    except FileNotFoundError as exc:
        print(f"tradebot: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except DataError as exc:
        print(f"tradebot: {args.file}: {exc}", file=sys.stderr)
        return EX_DATAERR
    return EX_OK


def _run(config: Config) -> int:
    from tradebot.app import live_app
    from tradebot.feeds.instruments import live_instruments
    from tradebot.systemd import Notifier

    notifier = Notifier()
    log.info("service_starting", version=__version__, config=config.source,
             database=_redact(config.database_url()))

    async def main() -> int:
        instruments = await live_instruments(config)
        return await live_app(config, notifier, instruments).run_live()

    return uvloop.run(main())


async def _until_signal(duration_s: float = 0.0) -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration_s > 0:
        loop.call_later(duration_s, stop.set)
    return stop


def _record(config: Config, args: argparse.Namespace) -> int:
    import dataclasses

    from tradebot.clock import LiveClock
    from tradebot.config import FeedConfig
    from tradebot.feeds.recorder import record

    base = next((f for f in config.feeds if f.venue == args.venue), FeedConfig(venue=args.venue))
    feed = dataclasses.replace(base, symbols=list(args.symbols),
                               ws_url=args.ws_url or base.ws_url,
                               rest_url=args.rest_url or base.rest_url)

    async def main() -> int:
        stop = await _until_signal(args.duration)
        writer = await record(feed, args.out, LiveClock(), stop, config.instrument_map())
        print(f"recorded {writer.lines} lines: {' '.join(str(f) for f in writer.files)}")
        return EX_OK

    return uvloop.run(main())


def _serve_recording(config: Config, args: argparse.Namespace) -> int:
    from tradebot.feeds.instruments import replay_instruments
    from tradebot.feeds.replay import inspect
    from tradebot.feeds.replay_server import serve_recording

    recording = inspect(args.file, args.venue)
    # The books it serves: those the replay would follow ([[instruments]] for a file that
    # carries no instrument list, like the hftbacktest captures).
    served = list(replay_instruments(config, [recording]).feeds[recording.venue])

    async def main() -> int:
        stop = await _until_signal()
        await serve_recording(recording, served, "127.0.0.1",
                              args.ws_port, args.http_port, args.speed, args.fps, stop)
        return EX_OK

    return uvloop.run(main())


def _replay(config: Config, args: argparse.Namespace) -> int:
    from tradebot.app import App
    from tradebot.clock import SimClock
    from tradebot.config import StateConfig
    from tradebot.feeds.instruments import replay_instruments
    from tradebot.feeds.replay import inspect

    recordings = [inspect(p, args.venue) for p in args.files]
    instruments = replay_instruments(config, recordings)
    with tempfile.TemporaryDirectory(prefix="tradebot-replay-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'replay.sqlite3'}"
        state = StateConfig(**{**_fields(config.state), "database_url": url})
        import dataclasses

        config = dataclasses.replace(config, state=state)
        if args.strategy:
            from tradebot.config import StrategyConfig

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
    return EX_OK


def _fields(obj: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
