"""Play recordings through the same feeds as a live run, under a simulated clock.

Three framings, told apart by their first line:
- hftbacktest (`../shared/data/binance_hftbacktest`): gzip or plain text, one message per line,
  `<receive time ns> <raw JSON>`; combined-stream frames, plus REST depth snapshot bodies
  (`{"lastUpdateId": ...}`) that belong to the file's single depth stream.
- cryptofeed (`../shared/data/cryptofeed`): `NAME.ws.N.0` starts with `<url> <-> <ts>` (one
  connection), then `<unix ts>: <frame>` received and `<url> <- <ts>: <frame>` sent; some frames
  are Python byte literals `b'...'` of raw-deflate data. `NAME.http.0.0` beside it holds REST
  snapshots `<url> -> <ts>: <body>`, merged by time; `NAME.0` holds the instrument lists.
- tradebot (`tradebot record`): a `<ns> #tradebot venue=V` header, then `<ns> <frame>`
  received, `<ns> < <frame>` sent and `<ns> > <url> <body>` REST responses.

REST snapshots reach the feed as a live one does: `Feed.parse_snapshot`, then `on_snapshot`.
Several files play in order; each cryptofeed or tradebot connection resets the books as a new
connection would.
"""

from __future__ import annotations

import ast
import asyncio
import heapq
import re
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import structlog
from prometheus_client import Counter

from tradebot.clock import SimClock, monotonic
from tradebot.domain import Instrument
from tradebot.errors import DataError
from tradebot.feeds.base import Feed
from tradebot.feeds.lines import (
    Damage,
    RecordingDamaged,
    find_damage,
    first_line,
    raw_lines,
    read_lines,
    steady_times,
)
from tradebot.feeds.recorded import is_instrument_list, recorded_instruments, snapshot_instrument
from tradebot.feeds.registry import venue_spec

log = structlog.get_logger(__name__)

REPLAY_DAMAGED = Counter(
    "tradebot_replay_damaged_files_total",
    "Recordings whose reading stopped at damage (cut short, still being written, corrupt gzip)",
)
REPLAY_CLOCK_JUMPS = Counter(
    "tradebot_replay_clock_jumps_total",
    "Recording lines whose receive time jumped beyond the limit; played at the previous time",
)
# A receive time this far from the line before it is a bad stamp, not the stream moving on
# (unless the next line agrees with it): a live feed that falls silent this long is stale.
MAX_CLOCK_JUMP_S = 60.0
_SNAPSHOT_PREFIX = b'{"lastUpdateId"'
_TRADEBOT_HEADER = b"#tradebot"
# cryptofeed's file names -> our venue names.
CRYPTOFEED_VENUES = {
    "BINANCE": "binance", "BINANCE_FUTURES": "binance_usdm", "BINANCE_DELIVERY": "binance_coinm",
    "KRAKEN": "kraken", "KRAKEN_FUTURES": "kraken_futures", "OKX": "okx", "KUCOIN": "kucoin",
    "COINBASE": "coinbase", "BYBIT": "bybit",
}
_CF_NAME = re.compile(r"^(?P<name>[A-Z_]+)\.ws\.\d+\.\d+$")
_CF_CONNECT = re.compile(rb"^(\S+) <-> (\d+(?:\.\d+)?)$")
_CF_SENT = re.compile(rb"^(\S+) <- (\d+(?:\.\d+)?): ")
_CF_REST = re.compile(rb"^(\S+) -> (\d+(?:\.\d+)?): ")
_CF_FRAME = re.compile(rb"^(\d+(?:\.\d+)?): ")


class Entry(NamedTuple):
    """One recorded event: kind "frame" (received), "sent", "rest" or "connect"."""

    ts: int
    kind: str
    url: str
    payload: bytes


def first_timestamp(path: Path) -> int:
    """Return the receive time of the first line of a recording, in any framing."""
    framing = detect_framing(path)
    damaged: list[Damage] = []
    if framing == "hftbacktest":
        for ts, _ in read_lines(path, damaged=damaged):
            return ts
    else:
        for entry in read_entries(path, framing, damaged):
            return entry.ts
    if damaged:
        raise RecordingDamaged(damaged[0])
    raise DataError(f"{path}: recording is empty")


def detect_framing(path: Path) -> str:
    """Return "hftbacktest", "cryptofeed" or "tradebot" from the first line of a recording."""
    if not path.exists():
        raise FileNotFoundError(f"recording {path} does not exist")
    first = first_line(path)
    if _CF_CONNECT.match(first):
        return "cryptofeed"
    ts, _, rest = first.partition(b" ")
    if ts.isdigit() and rest.startswith(_TRADEBOT_HEADER):
        return "tradebot"
    return "hftbacktest"


def seconds_to_ns(text: bytes) -> int:
    """Convert `1618678132.3858151` to integer ns exactly (no float on the way)."""
    whole, _, frac = text.partition(b".")
    return int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9])


def decode_payload(payload: bytes) -> bytes:
    """Return a frame; a Python byte literal `b'...'` holds raw-deflate data (OKX)."""
    if not payload.startswith((b"b'", b'b"')):
        return payload
    try:
        raw = ast.literal_eval(payload.decode())
        return zlib.decompress(raw, -zlib.MAX_WBITS)
    except (ValueError, SyntaxError, zlib.error, UnicodeDecodeError) as exc:
        raise DataError(f"undecodable byte-literal frame: {exc}") from None


def _cryptofeed_ws(path: Path, damaged: list[Damage] | None) -> Iterator[Entry]:
    for lineno, raw in enumerate(raw_lines(path, damaged), 1):
        line = raw.rstrip(b"\r")
        if not line.strip():
            continue
        if m := _CF_FRAME.match(line):
            yield Entry(seconds_to_ns(m.group(1)), "frame", "",
                        decode_payload(line[m.end():]))
        elif m := _CF_SENT.match(line):
            yield Entry(seconds_to_ns(m.group(2)), "sent", m.group(1).decode(),
                        line[m.end():])
        elif m := _CF_CONNECT.match(line):
            yield Entry(seconds_to_ns(m.group(2)), "connect", m.group(1).decode(), b"")
        else:
            raise DataError(f"{path}:{lineno}: not a cryptofeed ws line: {line[:80]!r}")


def read_rest_lines(path: Path, damaged: list[Damage] | None = None) -> Iterator[Entry]:
    """Yield the `<url> -> <ts>: <body>` lines of a cryptofeed REST file (others skipped).

    Damage as in `read_lines`.
    """
    for raw in raw_lines(path, damaged):
        line = raw.rstrip(b"\r")
        if m := _CF_REST.match(line):
            yield Entry(seconds_to_ns(m.group(2)), "rest", m.group(1).decode(),
                        line[m.end():])


def _tradebot(path: Path, damaged: list[Damage] | None) -> Iterator[Entry]:
    for lineno, raw in enumerate(raw_lines(path, damaged), 1):
        line = raw.rstrip(b"\r")
        if not line:
            continue
        ts, sep, payload = line.partition(b" ")
        if not sep or not ts.isdigit():
            raise DataError(f"{path}:{lineno}: expected '<ns> <frame>', got {line[:80]!r}")
        if payload.startswith(b"< "):
            yield Entry(int(ts), "sent", "", payload[2:])
        elif payload.startswith(b"> "):
            url, _, body = payload[2:].partition(b" ")
            yield Entry(int(ts), "rest", url.decode(), body)
        elif payload.startswith(_TRADEBOT_HEADER):
            yield Entry(int(ts), "connect", "", payload)
        else:
            yield Entry(int(ts), "frame", "", payload)


def http_companion(path: Path) -> Path | None:
    """Return the cryptofeed REST file recorded beside `NAME.ws.N.0`, if any."""
    m = _CF_NAME.match(path.name)
    if m is None:
        return None
    http = path.with_name(f"{m.group('name')}.http.0.0")
    return http if http.exists() else None


def read_entries(path: Path, framing: str | None = None,
                 damaged: list[Damage] | None = None) -> Iterator[Entry]:
    """Yield a cryptofeed or tradebot recording's entries in time order (REST merged in).

    Damage (in the recording or its REST companion) as in `read_lines`.
    """
    framing = framing or detect_framing(path)
    if framing == "tradebot":
        yield from _tradebot(path, damaged)
        return
    if framing != "cryptofeed":
        raise DataError(f"{path}: read_entries reads cryptofeed or tradebot framing only")
    http = http_companion(path)
    if http is None:
        yield from _cryptofeed_ws(path, damaged)
        return
    yield from heapq.merge(_cryptofeed_ws(path, damaged), read_rest_lines(http, damaged),
                           key=lambda e: e.ts)


@dataclass(slots=True)
class Recording:
    """One file: its venue, framing, and the instruments it carries.

    hftbacktest files name their depth streams' venue symbols (`depth_symbols`), to be matched
    with configured instruments; cryptofeed and tradebot recordings carry the venue's own
    instrument list, parsed into `instruments` (the config may override them).
    """

    path: Path
    venue: str
    depth_symbols: list[str] = field(default_factory=list)
    framing: str = "hftbacktest"
    instruments: list[Instrument] = field(default_factory=list)
    subscribed: list[bytes] = field(default_factory=list)  # the frames the client sent


def inspect(path: Path, venue: str | None = None, probe_lines: int = 5000) -> Recording:
    """Read the start of a recording to find its venue (unless given) and instruments."""
    try:
        return _inspect(path, venue, probe_lines)
    except DataError as exc:
        # Garbage lines from corrupt gzip data: name the damage, not the line.
        if isinstance(exc, RecordingDamaged) or (damage := find_damage(path)) is None:
            raise
        raise RecordingDamaged(damage) from None


def _inspect(path: Path, venue: str | None, probe_lines: int) -> Recording:
    framing = detect_framing(path)
    if framing != "hftbacktest":
        return _inspect_entries(path, framing, venue)
    symbols: list[str] = []
    detected: str | None = None
    # A damaged file is read up to its damage here; playing it reports the damage.
    damaged: list[Damage] = []
    for i, (_, payload) in enumerate(read_lines(path, damaged=damaged)):
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
    if not symbols and damaged:
        raise RecordingDamaged(damaged[0])  # before any depth stream: nothing to play
    if not symbols:
        raise DataError(f"{path}: no depth stream found in the first {probe_lines} lines")
    return Recording(path=path, venue=venue or detected or "binance", depth_symbols=symbols)


def _inspect_entries(path: Path, framing: str, venue: str | None) -> Recording:
    sent: list[bytes] = []
    rest: list[Entry] = []
    damaged: list[Damage] = []
    for entry in read_entries(path, framing, damaged):
        if entry.kind == "sent":
            sent.append(entry.payload)
        elif entry.kind == "rest":
            rest.append(entry)
        elif entry.kind == "connect" and venue is None and framing == "tradebot":
            venue = _header_venue(entry.payload)
        elif entry.kind == "connect" and entry.url:
            sent.append(entry.url.encode())  # a URL that subscribes (Binance `?streams=`)
    if venue is None and (m := _CF_NAME.match(path.name)) is not None:
        venue = CRYPTOFEED_VENUES.get(m.group("name"))
    if venue is None:
        # Damaged before its header: the damage is the news, not the missing venue.
        raise RecordingDamaged(damaged[0]) if damaged else DataError(
            f"{path}: cannot tell the venue; pass --venue")
    spec = venue_spec(venue)
    known: dict[str, Instrument] = {}
    for body in _instrument_lists(path, framing, venue, rest):
        for inst in spec.parse_instruments(body):
            known.setdefault(inst.venue_symbol, inst)
    instruments = recorded_instruments(venue, sent, known.values())
    return Recording(path=path, venue=venue, framing=framing, instruments=instruments,
                     depth_symbols=[i.venue_symbol for i in instruments], subscribed=sent)


def _instrument_lists(path: Path, framing: str, venue: str, rest: list[Entry]) -> list[bytes]:
    # In the recording itself (tradebot), or in the cryptofeed `NAME.0` beside it.
    entries = list(rest)
    if framing == "cryptofeed" and (m := _CF_NAME.match(path.name)) is not None:
        listing = path.with_name(f"{m.group('name')}.0")
        if listing.exists():
            entries += read_rest_lines(listing, [])  # damage: the lists before it count
    return [e.payload for e in entries if is_instrument_list(venue, e.url)]


def _header_venue(header: bytes) -> str | None:
    for word in header.split():
        key, _, value = word.partition(b"=")
        if key == b"venue" and value:
            return value.decode()
    return None


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
    """Feed recordings to their venue's Feed, moving the SimClock to each line's time.

    A damaged file plays up to its damage (listed in `damaged`); a receive time that jumps
    more than `max_clock_jump_s` from its neighbours plays at the time before it (counted in
    `clock_jumps`, see `steady_times`).
    """

    def __init__(self, feeds: Mapping[str, Feed], clock: SimClock, recordings: list[Recording],
                 max_clock_jump_s: float = MAX_CLOCK_JUMP_S) -> None:
        if not 0 < max_clock_jump_s < 1e9:  # NaN fails this too
            raise ValueError(f"max_clock_jump_s must be > 0 seconds, got {max_clock_jump_s}")
        self._feeds = feeds
        self._clock = clock
        self._recordings = recordings
        self._jump_ns = int(max_clock_jump_s * 1e9)
        self._file_jumps = 0
        self.messages = 0
        self.damaged: list[Damage] = []
        self.clock_jumps = 0

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
            seen = len(self.damaged)
            self._file_jumps = 0
            try:
                if rec.framing != "hftbacktest":
                    await self._play_entries(feed, rec, pace, speed)
                else:
                    await self._play_lines(feed, rec, pace, speed, bar, done_bytes)
            except DataError:
                # A malformed line: garbage that corrupt gzip data inflated to before zlib
                # saw the damage (then the damage is the cause), or a bad line in a sound file.
                damage = find_damage(rec.path)
                if damage is None:
                    raise
                self.damaged.append(damage)
            done_bytes += rec.path.stat().st_size
            self._report_damage(seen)
        if bar is not None:
            bar.update(total, self.messages, force=True)

    async def _play_lines(self, feed: Feed, rec: Recording, pace: _Pacer, speed: float,
                          bar: _Progress | None, done_bytes: int) -> None:
        position = [0]
        advance_to, dispatch = self._clock.advance_to, self._dispatch
        lines = steady_times(read_lines(rec.path, position, self.damaged), self._jump_ns,
                             lambda stamped, prev: self._jumped(rec, stamped, prev))
        for n, (ts, payload) in enumerate(lines):
            advance_to(ts)
            dispatch(feed, rec, ts, payload)
            self.messages += 1
            if n & 1023 == 0:
                await pace.wait(ts)
                await asyncio.sleep(0)
                if bar is not None:
                    bar.update(done_bytes + position[0], self.messages)
            elif speed > 0:
                await pace.wait(ts)

    async def _play_entries(self, feed: Feed, rec: Recording, pace: _Pacer,
                            speed: float) -> None:
        entries = steady_times(((e.ts, e) for e in read_entries(rec.path, rec.framing,
                                                                self.damaged)),
                               self._jump_ns,
                               lambda stamped, prev: self._jumped(rec, stamped, prev))
        for n, (ts, entry) in enumerate(entries):
            self._clock.advance_to(ts)
            kind = entry.kind
            if kind == "frame":
                feed.on_frame(entry.payload, ts)
                self.messages += 1
            elif kind == "rest":
                self._rest(feed, entry if ts == entry.ts else entry._replace(ts=ts))
            elif kind == "connect":
                feed.reset_books("connect")
            if n & 1023 == 0 or speed > 0:
                await pace.wait(ts)
                if n & 1023 == 0:
                    await asyncio.sleep(0)

    def _jumped(self, rec: Recording, stamped: int, previous: int) -> None:
        self.clock_jumps += 1
        REPLAY_CLOCK_JUMPS.inc()
        self._file_jumps += 1
        if self._file_jumps == 1:  # once per file: a file of bad stamps would flood the log
            log.warning("replay_clock_jump_ignored", file=str(rec.path), stamped_ns=stamped,
                        previous_ns=previous, jump_s=round((stamped - previous) / 1e9, 3),
                        limit_s=self._jump_ns / 1e9)

    def _report_damage(self, seen: int) -> None:
        for damage in self.damaged[seen:]:
            REPLAY_DAMAGED.inc()
            log.error("recording_damaged", file=damage.file, offset=damage.offset,
                      error=damage.error)

    def _rest(self, feed: Feed, entry: Entry) -> None:
        if is_instrument_list(feed.venue, entry.url):
            return
        inst = snapshot_instrument(entry.url, feed.instruments.values())
        if inst is None:
            return  # a snapshot of an instrument this replay does not follow
        try:
            snapshot = feed.parse_snapshot(entry.payload, inst, entry.ts)
        except DataError as exc:
            feed.parse_error("snapshot", exc, entry.payload)
            return
        feed.on_snapshot(snapshot)

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
