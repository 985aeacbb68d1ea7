"""Record a venue's raw frames and the REST responses the feed fetched, for replay.

The recorder runs the venue's real Feed under the real FeedRunner (keep-alive, reconnects,
resyncs) and taps every frame: gzip text files, one line each, rotated hourly,
`DIR/<venue>-YYYYMMDDHH.gz`:
- `<ns> #tradebot venue=V` header;
- `<ns> <frame>` received, `<ns> < <frame>` sent;
- `<ns> > <url> <body>` a REST response (instrument lists, depth snapshots).
Each file starts with the header, the instrument lists and the subscriptions, so it replays
on its own (`tradebot replay FILE`). Binary frames that are not UTF-8 are written as Python
byte literals, as cryptofeed does.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import structlog
from prometheus_client import Counter

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import ConfigError, DataError
from tradebot.feeds.instruments import fetch_listed
from tradebot.feeds.recorded import is_instrument_list
from tradebot.feeds.registry import build_feed
from tradebot.feeds.runner import FeedRunner

log = structlog.get_logger(__name__)

RECORDED_LINES = Counter("tradebot_recorder_lines_total", "Lines written by the recorder",
                         ["venue", "kind"])
RECORDER_ERRORS = Counter("tradebot_recorder_errors_total",
                          "Recorder failures (instrument lists that could not be fetched)",
                          ["venue"])
_HOUR_NS = 3_600_000_000_000
_FLUSH_NS = 1_000_000_000


def _clean(payload: bytes) -> bytes:
    try:
        payload.decode()
    except UnicodeDecodeError:
        return repr(payload).encode()
    # JSON never holds a raw newline inside a string, so this keeps one frame per line.
    return payload.replace(b"\r", b" ").replace(b"\n", b" ")


@dataclass(slots=True)
class RecordingWriter:
    """Write tapped frames as `<ns> ...` gzip lines, one file per hour."""

    out_dir: Path
    venue: str
    # Repeated at the top of each file: instrument lists and subscriptions, one line per
    # distinct payload (a reconnect resends the same subscriptions); keep-alives are not.
    context: dict[bytes, bytes] = field(default_factory=dict)
    keepalive: bytes = b""
    files: list[Path] = field(default_factory=list)
    lines: int = 0
    _fh: IO[bytes] | None = None
    _hour: int = -1
    _flushed_ns: int = 0

    def tap(self, kind: str, ts: int, url: str, payload: bytes) -> None:
        """Write one frame or REST response (a FeedRunner tap)."""
        context = False
        if kind == "recv":
            line = b"%d %s\n" % (ts, _clean(payload))
        elif kind == "send":
            line = b"%d < %s\n" % (ts, _clean(payload))
            context = payload != self.keepalive
        else:
            line = b"%d > %s %s\n" % (ts, url.encode(), _clean(payload))
            context = is_instrument_list(self.venue, url)
        self._write(ts, line)
        if context:
            self.context[payload] = line
        RECORDED_LINES.labels(self.venue, kind).inc()

    def _write(self, ts: int, line: bytes) -> None:
        fh = self._fh if self._fh is not None and ts // _HOUR_NS == self._hour \
            else self._rotate(ts)
        fh.write(line)
        self.lines += 1
        if ts - self._flushed_ns >= _FLUSH_NS:
            fh.flush()
            self._flushed_ns = ts

    def _rotate(self, ts: int) -> IO[bytes]:
        self.close()
        self._hour = ts // _HOUR_NS
        stamp = time.strftime("%Y%m%d%H", time.gmtime(ts // 1_000_000_000))
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{self.venue}-{stamp}.gz"
        fh: IO[bytes] = gzip.open(path, "ab")  # type: ignore[assignment]  # noqa: SIM115
        self._fh = fh
        self.files.append(path)
        fh.write(b"%d #tradebot venue=%s\n" % (ts, self.venue.encode()))
        for line in self.context.values():
            fh.write(line)
        log.info("recording_file_opened", path=str(path))
        return fh

    def close(self) -> None:
        """Flush and close the current file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


async def record(config: FeedConfig, out_dir: Path, clock: Clock, stop: asyncio.Event,
                 configured: dict[InstrumentId, Instrument]) -> RecordingWriter:
    """Record `config.venue` until `stop` is set; return the writer (its files, lines)."""
    writer = RecordingWriter(out_dir, config.venue)
    async with aiohttp.ClientSession() as session:
        instruments: list[Instrument] = []

        def tap_list(url: str, body: bytes) -> None:
            writer.tap("rest", clock.now_ns(), url, body)

        try:
            instruments = list((await fetch_listed(session, config, tap_list)).values())
        except (aiohttp.ClientError, TimeoutError, OSError, DataError) as exc:
            RECORDER_ERRORS.labels(config.venue).inc()
            log.warning("instruments_fetch_failed", venue=config.venue, error=repr(exc))
        have = {i.id.symbol for i in instruments}
        for symbol in config.symbols:
            inst = configured.get(InstrumentId(symbol, config.venue))
            if inst is not None and symbol not in have:
                instruments.append(inst)
        missing = set(config.symbols) - {i.id.symbol for i in instruments}
        if missing:
            raise ConfigError(f"{', '.join(sorted(missing))} on {config.venue}: not in the "
                              "venue's instrument list nor in [[instruments]]", key="symbols")
        feed = build_feed(config.venue, instruments, Bus(), clock)
        keepalive = feed.keepalive()
        if keepalive is not None:
            message = keepalive[0]
            writer.keepalive = message.encode() if isinstance(message, str) else message
        runner = FeedRunner(feed, config, clock, session, tap=writer.tap)
        task = asyncio.get_running_loop().create_task(runner.run(),
                                                      name=f"record:{config.venue}")
        try:
            await stop.wait()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            writer.close()
    log.info("recording_stopped", venue=config.venue, lines=writer.lines,
             files=[str(f) for f in writer.files])
    return writer
