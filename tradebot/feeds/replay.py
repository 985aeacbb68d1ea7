"""Play recordings through the same feeds as a live run, under a simulated clock.

Format (`../shared/data/binance_hftbacktest`): gzip or plain text, one message per line,
`<receive time ns> <raw JSON>`; combined-stream frames, plus REST depth snapshot bodies
(`{"lastUpdateId": ...}`) that belong to the file's depth stream. Several files play in order
as one continuous stream.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tradebot.clock import SimClock, monotonic
from tradebot.errors import DataError
from tradebot.feeds.base import Feed

_SNAPSHOT_PREFIX = b'{"lastUpdateId"'


def read_lines(path: Path, position: list[int] | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (receive ns, payload) per line; DataError names the file and line when malformed.

    When `position` is given, its first item tracks the bytes of the file consumed so far.
    Reads 1 MiB blocks and splits them (line-by-line reads of a gzip stream cost more than
    the whole pipeline does per message).
    """
    raw_file = path.open("rb")
    magic = raw_file.read(2)
    raw_file.seek(0)
    fh: IO[bytes] = (gzip.GzipFile(fileobj=raw_file, mode="rb")  # type: ignore[assignment]
                     if magic == b"\x1f\x8b" else raw_file)
    lineno = 0
    rest = b""
    with raw_file, fh:
        while True:
            block = fh.read(1 << 20)
            if position is not None:
                position[0] = raw_file.tell()
            if not block:
                break
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                lineno += 1
                if line:
                    yield _split_line(path, lineno, line)
        if rest.strip():
            yield _split_line(path, lineno + 1, rest)


def _split_line(path: Path, lineno: int, line: bytes) -> tuple[int, bytes]:
    ts, sep, payload = line.rstrip(b"\r").partition(b" ")
    if not sep or not ts.isdigit() or not payload.startswith(b"{"):
        raise DataError(f"{path}:{lineno}: expected '<ns> <json>', got {line[:80]!r}")
    return int(ts), payload


def first_timestamp(path: Path) -> int:
    """Return the receive time of the first line of a recording."""
    for ts, _ in read_lines(path):
        return ts
    raise DataError(f"{path}: recording is empty")


@dataclass(slots=True)
class Recording:
    """One file: its venue and the venue symbols of its depth streams."""

    path: Path
    venue: str
    depth_symbols: list[str] = field(default_factory=list)


def inspect(path: Path, venue: str | None = None, probe_lines: int = 5000) -> Recording:
    """Read the start of a recording to find its venue (unless given) and depth symbols."""
    if not path.exists():
        raise FileNotFoundError(f"recording {path} does not exist")
    symbols: list[str] = []
    detected: str | None = None
    for i, (_, payload) in enumerate(read_lines(path)):
        if i >= probe_lines:
            break
        if payload.startswith(_SNAPSHOT_PREFIX) or b'"stream":"' not in payload[:40]:
            continue
        stream = payload[11:payload.index(b'"', 11)].decode()
        symbol, _, channel = stream.partition("@")
        if channel.startswith("depth"):
            if symbol.upper() not in symbols:
                symbols.append(symbol.upper())
            if detected is None:
                detected = _detect_binance(payload)
    if not symbols:
        raise DataError(f"{path}: no depth stream found in the first {probe_lines} lines")
    return Recording(path=path, venue=venue or detected or "binance", depth_symbols=symbols)


def _detect_binance(depth_frame: bytes) -> str:
    if b'"ps":' in depth_frame or b"_PERP" in depth_frame:
        return "binance_coinm"
    if b'"pu":' in depth_frame:
        return "binance_usdm"
    return "binance"


class _Progress:
    def __init__(self, total_bytes: int, stream: IO[str]) -> None:
        self._total = max(total_bytes, 1)
        self._stream = stream
        self._next = 0.0

    def update(self, done_bytes: int, messages: int, force: bool = False) -> None:
        now = monotonic()
        if not force and now < self._next:
            return
        self._next = now + 0.2
        frac = min(done_bytes / self._total, 1.0)
        bar = "#" * int(frac * 30)
        self._stream.write(f"\r[{bar:<30}] {frac:6.1%} {messages:>10,} messages")
        self._stream.flush()
        if force:
            self._stream.write("\n")


class ReplayDriver:
    """Feed recordings to their venue's Feed, moving the SimClock to each line's time."""

    def __init__(self, feeds: Mapping[str, Feed], clock: SimClock,
                 recordings: list[Recording]) -> None:
        self._feeds = feeds
        self._clock = clock
        self._recordings = recordings
        self.messages = 0

    async def run(self, speed: float = 0.0, progress: bool | None = None,
                  on_line: Callable[[], Any] | None = None) -> None:
        """Play every recording in order; `speed` > 0 paces at that multiple of real time."""
        show = sys.stderr.isatty() if progress is None else progress
        total = sum(r.path.stat().st_size for r in self._recordings)
        bar = _Progress(total, sys.stderr) if show else None
        pace = _Pacer(speed)
        done_bytes = 0
        for rec in self._recordings:
            feed = self._feeds[rec.venue]
            position = [0]
            for n, (ts, payload) in enumerate(read_lines(rec.path, position)):
                self._clock.advance_to(ts)
                self._dispatch(feed, rec, ts, payload)
                self.messages += 1
                if n & 1023 == 0:
                    await pace.wait(ts)
                    await asyncio.sleep(0)
                    if bar is not None:
                        bar.update(done_bytes + position[0], self.messages)
                elif speed > 0:
                    await pace.wait(ts)
            done_bytes += rec.path.stat().st_size
        if bar is not None:
            bar.update(total, self.messages, force=True)

    def _dispatch(self, feed: Feed, rec: Recording, ts: int, payload: bytes) -> None:
        if payload.startswith(_SNAPSHOT_PREFIX):
            if len(rec.depth_symbols) != 1:
                raise DataError(f"{rec.path}: a snapshot line in a file with several depth "
                                f"streams ({rec.depth_symbols}) cannot be attributed")
            inst = feed.instrument_of(rec.depth_symbols[0].lower())  # type: ignore[attr-defined]
            try:
                snapshot = feed.parse_snapshot(payload, inst, ts)
            except DataError as exc:
                feed.parse_error("snapshot", exc, payload)
                return
            feed.on_snapshot(snapshot)
        else:
            feed.on_frame(payload, ts)


class _Pacer:
    def __init__(self, speed: float) -> None:
        self._speed = speed
        self._first_ts: int | None = None
        self._start = 0.0

    async def wait(self, ts: int) -> None:
        if self._speed <= 0:
            return
        if self._first_ts is None:
            self._first_ts, self._start = ts, monotonic()
            return
        due = self._start + (ts - self._first_ts) / 1e9 / self._speed
        delay = due - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
