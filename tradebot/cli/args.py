"""Argument types and checks argparse cannot make alone: finite numbers, ports, paths, `--db`.

A type function raises `argparse.ArgumentTypeError` (argparse prints the usage, exit 2); the
other checks return (or raise as `UsageError`) a message naming the argument, for the same
exit. Input files are checked before a command opens them, so a directory or an unreadable
file is a message and exit 66, not a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from tradebot.config.probe import probe_database
from tradebot.errors import ConfigError


class UsageError(Exception):
    """An argument that cannot work (exit 2); the message names it."""


def non_negative(text: str) -> float:
    """Parse a finite number >= 0 (`--speed`, `--fps`, `--duration`); NaN and inf are not."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def port(text: str) -> int:
    """Parse a TCP port, 0..65535 (0: any free port)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range: a port is 0..65535")
    return value


def input_problem(path: Path) -> str | None:
    """Return why `path` cannot be read as an input file, or None when it can."""
    try:
        if not path.exists():
            return f"{path}: no such file"
        if path.is_dir():
            return f"{path}: is a directory, not a file"
        if not os.access(path, os.R_OK):
            return f"{path}: not readable (permission denied)"
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        return f"{path!r}: not a usable path ({exc})"
    return None


def output_problem(path: Path, flag: str) -> str | None:
    """Return why `path` cannot be created as a file in an existing directory, or None."""
    try:
        if path.is_dir():
            return f"{flag} {path}: is a directory; name the output file"
        parent = path.parent
        if not parent.is_dir():
            return f"{flag} {path}: directory {parent} does not exist (it is not created)"
        if not os.access(parent, os.W_OK):
            return f"{flag} {path}: directory {parent} is not writable"
    except (OSError, ValueError) as exc:
        return f"{flag} {path!r}: not a usable path ({exc})"
    return None


def database_url(text: str) -> str:
    """Return `--db` as a database URL: a plain path is an SQLite file.

    The SQLite file's directory must exist: the command never creates one (it may run as
    root). A URL must name a dialect whose driver is installed. Raise UsageError otherwise.
    """
    url = text if "://" in text else f"sqlite:///{Path(text).expanduser().absolute()}"
    try:
        probe_database(url, "--db")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        problem = output_problem(Path(parsed.database), "--db")
        if problem:
            raise UsageError(problem)
    return url
