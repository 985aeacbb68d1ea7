"""Recorded files as lines: gzip or plain text, where damage stops them, times that jump.

A recording can be damaged: cut short (a copy interrupted, or the hour file `tradebot record`
is still writing, whose last gzip member has no end marker yet) or corrupt (bytes changed, or
garbage after the gzip header). Reading stops at the damage and names it (`Damage`: the file,
the compressed bytes read, the cause); what came before it plays.

One line stamped far from its neighbours (a receive time an hour ahead) must not move the
simulated clock: `steady_times` plays it at the time before it and reports it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from tradebot.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"
# Compressed bytes per decompress call: what a damaged block takes with it (its output is lost).
_GZIP_CHUNK = 1 << 16
_PLAIN_CHUNK = 1 << 20
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Damage:
    """Where a recording stops being readable: the file, the compressed bytes read, why."""

    file: str
    offset: int
    error: str


class RecordingDamaged(DataError):
    """A recording is unreadable from some point on (cut short, or corrupt gzip data)."""

    def __init__(self, damage: Damage) -> None:
        super().__init__(f"{damage.file}: unreadable after byte {damage.offset}: {damage.error}")
        self.damage = damage


def blocks(path: Path, position: list[int] | None = None) -> Generator[bytes, None, None]:
    """Yield a file's bytes in blocks, decompressed when it is gzip; RecordingDamaged at damage.

    When `position` is given, its first item tracks the bytes of the file consumed so far.
    """
    with path.open("rb") as fh:
        gzipped = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        if gzipped:
            yield from _inflate(path, fh, position)
            return
        while block := fh.read(_PLAIN_CHUNK):
            if position is not None:
                position[0] = fh.tell()
            yield block


def _inflate(path: Path, fh: IO[bytes], position: list[int] | None) -> Iterator[bytes]:
    # Inflated here rather than through gzip.GzipFile: its read() loses everything it had
    # decompressed when it meets the damage, and names neither offset nor cause.
    inflate = zlib.decompressobj(31)  # 31: a gzip header and trailer, CRC checked
    in_member = False
    while chunk := fh.read(_GZIP_CHUNK):
        if position is not None:
            position[0] = fh.tell()
        while chunk:
            if not in_member:
                # Zero padding between members is allowed (as gzip.GzipFile allows it).
                chunk = chunk.lstrip(b"\x00")
                in_member = bool(chunk)
                if not chunk:
                    break
            try:
                data = inflate.decompress(chunk)
            except zlib.error as exc:
                raise RecordingDamaged(Damage(str(path), fh.tell(),
                                              f"corrupt gzip data ({exc})")) from None
            if data:
                yield data
            chunk = b""
            if inflate.eof:  # a member ends; `tradebot record` appends one per open
                chunk, in_member = inflate.unused_data, False
                inflate = zlib.decompressobj(31)
    if in_member:
        raise RecordingDamaged(Damage(
            str(path), fh.tell(), "the gzip stream ends before its end marker (the file was "
            "cut short or is still being written)"))


def read_lines(path: Path, position: list[int] | None = None,
               damaged: list[Damage] | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (receive ns, payload) per line; DataError names the file and line when malformed.

    When `position` is given, its first item tracks the bytes of the file consumed so far.
    A damaged file (cut short, corrupt gzip data) raises RecordingDamaged where the damage
    starts, or, when `damaged` is given, appends its Damage there and ends after the last
    complete line before it. Reads large blocks and splits them (line-by-line reads of a
    gzip stream cost more than the whole pipeline does per message).
    """
    lineno = 0
    rest = b""
    try:
        for block in blocks(path, position):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            for line in lines:
                lineno += 1
                # The common case inline (a call per line costs ~1% of a replay); anything
                # else goes through _split_line, which names the file and line when malformed.
                ts, sep, payload = line.partition(b" ")
                if sep and ts.isdigit() and payload[:1] == b"{" and payload[-1:] != b"\r":
                    yield int(ts), payload
                elif line:
                    yield _split_line(path, lineno, line)
    except RecordingDamaged as exc:
        if damaged is None:
            raise
        damaged.append(exc.damage)
        return  # the line the damage cut is incomplete: not played
    if rest.strip():
        yield _split_line(path, lineno + 1, rest)


def raw_lines(path: Path, damaged: list[Damage] | None = None) -> Iterator[bytes]:
    """Yield the lines of a file, gzip or plain, without their "\\n"; damage as in read_lines."""
    rest = b""
    try:
        for block in blocks(path):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines
    except RecordingDamaged as exc:
        if damaged is None:
            raise
        damaged.append(exc.damage)
        return
    if rest:
        yield rest


def find_damage(path: Path) -> Damage | None:
    """Read a whole file; return where it is damaged, None when it reads clean.

    Corrupt gzip data can inflate to garbage for a while before zlib notices (a back reference
    copies valid-looking text): a malformed line in a damaged file is blamed on the damage.
    """
    try:
        for _ in blocks(path):
            pass
    except RecordingDamaged as exc:
        return exc.damage
    return None


def first_line(path: Path, limit: int = 1 << 16) -> bytes:
    """Return a file's first line, at most `limit` bytes (b"" when damaged before any data)."""
    head = b""
    with closing(blocks(path)) as reader:
        try:
            for block in reader:
                head += block
                if b"\n" in block or len(head) >= limit:
                    break
        except RecordingDamaged:
            pass  # reading the file to play it reports the damage
    return head.partition(b"\n")[0][:limit].rstrip(b"\r")


def _split_line(path: Path, lineno: int, line: bytes) -> tuple[int, bytes]:
    ts, sep, payload = line.rstrip(b"\r").partition(b" ")
    if not sep or not ts.isdigit() or not payload.startswith(b"{"):
        raise DataError(f"{path}:{lineno}: expected '<ns> <json>', got {line[:80]!r}")
    return int(ts), payload


def steady_times(items: Iterator[tuple[int, T]], limit_ns: int,
                 on_jump: Callable[[int, int], None]) -> Iterator[tuple[int, T]]:
    """Yield (time to play at, item), keeping one badly stamped line from moving the clock.

    A receive time more than `limit_ns` from the line before it is held until the next line:
    when that one agrees with it (within the limit), the stream really moved on (a pause, a
    reconnect) and both play at their own times. Otherwise the stamp was wrong: call
    `on_jump(stamped, previous)` and play the line at the previous line's time. Playing it,
    rather than skipping it, keeps a depth stream's update ids unbroken. The first line sets
    the time.
    """
    first = next(items, None)
    if first is None:
        return
    prev = first[0]
    yield first
    held: tuple[int, T] | None = None
    for ts, item in items:
        if held is not None:
            stamped, held_item = held
            held = None
            if -limit_ns <= ts - stamped <= limit_ns:
                prev = stamped
                yield stamped, held_item
            else:
                on_jump(stamped, prev)
                yield prev, held_item
        if -limit_ns <= ts - prev <= limit_ns:
            prev = ts
            yield ts, item
        else:
            held = (ts, item)
    if held is not None:
        on_jump(held[0], prev)  # nothing after it to confirm the new time
        yield prev, held[1]
