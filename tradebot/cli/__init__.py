"""`tradebot run | replay | record | serve-recording | features | check-config | version`.

Exit codes: 0 ok; 1 a broken invariant or unexpected error (systemd restarts); 2 usage;
65 bad input data (EX_DATAERR); 66 missing input file (EX_NOINPUT); 75 the state is in use by
another process (EX_TEMPFAIL); 78 bad config (EX_CONFIG). The unit restarts on neither 75 nor 78.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import structlog

from tradebot import __version__
from tradebot.cli.args import (
    UsageError,
    database_url,
    input_problem,
    non_negative,
    output_problem,
    port,
)
from tradebot.cli.exits import EX_CONFIG, EX_DATAERR, EX_NOINPUT, EX_OK, EX_SOFTWARE, EX_TEMPFAIL
from tradebot.config import Config, default_config_path, load_config
from tradebot.config.probe import probe
from tradebot.errors import ConfigError, DataError, InvariantError, StateLocked
from tradebot.log import setup_logging

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
    rp.add_argument("--speed", type=non_negative, default=0.0,
                    help="multiple of real time (default 0: as fast as possible)")
    rp.add_argument("--json", action="store_true", help="print one JSON summary object")
    rp.add_argument("--db", help="database URL or SQLite file path, in an existing directory "
                    "(default: a temporary SQLite file)")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.add_argument("--strategy", metavar="KIND",
                    help="run only this strategy kind with default params (e.g. quoting)")
    rec = sub.add_parser("record", help="record a venue's raw frames and REST snapshots")
    rec.add_argument("--venue", required=True, help="venue to record")
    rec.add_argument("--symbols", nargs="+", required=True, help="normalized symbols")
    rec.add_argument("--out", type=Path, required=True, help="directory for the gzip files")
    rec.add_argument("--duration", type=non_negative, default=0.0,
                     help="seconds to record (default 0: until SIGINT/SIGTERM)")
    rec.add_argument("--ws-url", default="", help="websocket URL (default: the venue's)")
    rec.add_argument("--rest-url", default="", help="REST base URL (default: the venue's)")
    srv = sub.add_parser("serve-recording",
                         help="serve a recording on 127.0.0.1 in the venue's own protocol")
    srv.add_argument("file", type=Path, help="the recording")
    srv.add_argument("--venue", help="venue of the recording (default: detected)")
    srv.add_argument("--ws-port", type=port, default=8765)
    srv.add_argument("--http-port", type=port, default=8766)
    srv.add_argument("--speed", type=non_negative, default=1.0,
                     help="multiple of recorded time (default 1)")
    srv.add_argument("--fps", type=non_negative, default=0.0,
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
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _main(parser, args)
    except Exception as exc:
        # The last resort: one event (one JSON line off a terminal) and exit 1, never a raw
        # multi-line traceback; logging may not be set up yet (check-config, features).
        if not structlog.is_configured():
            setup_logging("info", "auto", sys.stderr)
        log.critical("command_failed", command=args.command, error=repr(exc), exc_info=exc)
        return EX_SOFTWARE


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "version":
        print(f"tradebot {__version__}")
        return EX_OK
    from tradebot.feeds.registry import FEEDS
    from tradebot.strategies.registry import KINDS

    if problem := _argument_problem(args, KINDS):
        parser.error(problem)
    if args.command == "features":
        from tradebot.cli.features import features

        return features(args)
    path = args.config
    if args.command == "check-config" and args.path is not None:
        path = args.path
    try:
        # The registries' names are the ones a [[feeds]] venue and a strategy kind may take.
        config = load_config(path if path is not None else default_config_path(),
                             venues=tuple(FEEDS), strategy_kinds=tuple(KINDS))
        if args.command == "check-config":
            return _check_config(config)
    except ConfigError as exc:
        return _config_failed(args.command, exc)
    quiet = args.command == "replay" and args.json
    setup_logging("warning" if quiet else config.log.level, config.log.format,
                  sys.stderr if args.command == "replay" else None)
    for name in (args.files if args.command == "replay" else
                 [args.file] if args.command == "serve-recording" else []):
        if problem := input_problem(name):
            log.error("input_missing", error=problem)
            return EX_NOINPUT
    return _guarded(config, args)


def _argument_problem(args: argparse.Namespace, kinds: Collection[str]) -> str | None:
    """Return what is wrong with the arguments past their types (exit 2), or None."""
    if args.command == "features" and args.out is not None:
        return output_problem(args.out, "--out")
    if args.command != "replay":
        return None
    if args.strategy is not None and args.strategy not in kinds:
        return f"--strategy {args.strategy}: unknown kind (known: {', '.join(sorted(kinds))})"
    if args.db is not None:
        try:
            args.db = database_url(args.db)
        except UsageError as exc:
            return str(exc)
    return None


def _check_config(config: Config) -> int:
    """Print the warnings and `config ok`; ConfigError for what `run` would fail on."""
    for warning in probe(config):
        print(f"tradebot: warning: {config.source}: {warning.key}: {warning.message}",
              file=sys.stderr)
    print(f"config ok: {config.source}")
    return EX_OK


def _config_failed(command: str, exc: ConfigError) -> int:
    # check-config answers a person; every other command logs the one event a service
    # manager's journal shows (the config's own log settings are what failed to load).
    if command == "check-config":
        print(f"tradebot: config error: {exc}", file=sys.stderr)
    else:
        setup_logging("info", "auto", sys.stderr)
        log.error("config_invalid", error=str(exc), key=exc.key, source=exc.source)
    return EX_CONFIG


def _command(name: str) -> Callable[[Config, argparse.Namespace], int]:
    # Imported on demand: `check-config` needs only the feed registry, `version` nothing.
    if name == "run":
        from tradebot.cli.run import run

        return lambda config, _args: run(config)
    if name == "record":
        from tradebot.cli.record import record

        return record
    if name == "serve-recording":
        from tradebot.cli.serve import serve

        return serve
    from tradebot.cli.replay import replay

    return replay


def _guarded(config: Config, args: argparse.Namespace) -> int:
    try:
        return _command(args.command)(config, args)
    except ConfigError as exc:
        log.error("config_invalid", error=str(exc))
        return EX_CONFIG
    except StateLocked as exc:
        log.error("state_locked", path=exc.path, holder_pid=exc.holder or None, error=str(exc))
        return EX_TEMPFAIL
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


