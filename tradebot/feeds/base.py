"""The venue-independent part of a feed: frame accounting, books, the connection runner.

A venue module subclasses `Feed` with its endpoints and pure parsers; `FeedRunner` owns the
connection: connect, subscribe, reconnect with exponential backoff and jitter, a stale-data
deadline, a planned reconnect before the venue's connection age limit, and REST snapshots with
a per-book rate limit. Replay drives the same `Feed` from a file.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
import websockets
from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from tradebot.bus import Bus
from tradebot.clock import Clock, monotonic, perf_ns
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import DataError, InvariantError
from tradebot.events import BookSnapshot, FeedStatus
from tradebot.feeds.book import BookSync, SequenceRule
from tradebot.log import Throttle

log = structlog.get_logger(__name__)

FEED_CONNECTED = Gauge("tradebot_feed_connected", "1 while the websocket is open", ["venue"])
FEED_RECONNECTS = Counter(
    "tradebot_feed_reconnects_total", "Connections lost or abandoned, by reason",
    ["venue", "reason"],
)
FEED_SNAPSHOT_ERRORS = Counter(
    "tradebot_feed_snapshot_errors_total", "REST snapshot requests that failed", ["venue"]
)
FEED_PARSE_ERRORS = Counter(
    "tradebot_feed_parse_errors_total", "Frames that could not be parsed, by kind",
    ["venue", "kind"],
)


# Upper bounds (ns) of the handler latency histogram: frame in -> everything it caused done.
LATENCY_BOUNDS_NS = (2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 1_000_000,
                     10_000_000)


@dataclass(slots=True)
class FeedStats:
    """Plain counters read at scrape time (cheaper than a metric call per frame)."""

    messages: int = 0
    last_message_ns: int = 0
    state: str = "idle"
    reason: str = ""
    parse_errors: dict[str, int] = field(default_factory=dict)
    latency_buckets: list[int] = field(
        default_factory=lambda: [0] * (len(LATENCY_BOUNDS_NS) + 1))
    latency_sum_ns: int = 0


class Feed(abc.ABC):
    """One venue's market data: turn frames into events and keep its books correct."""

    venue: str

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus, clock: Clock,
                 rule: SequenceRule) -> None:
        self.venue = venue
        self.bus = bus
        self.clock = clock
        self.instruments = {i.id: i for i in instruments}
        self.stats = FeedStats()
        self.snapshot_needed: Callable[[InstrumentId, str], None] = lambda _i, _r: None
        self.books = {
            iid: BookSync(inst, rule, bus, request_snapshot=self._need_snapshot)
            for iid, inst in self.instruments.items()
        }
        self._throttle = Throttle(30.0)

    def _need_snapshot(self, instrument: InstrumentId, reason: str) -> None:
        self.snapshot_needed(instrument, reason)

    @abc.abstractmethod
    def url(self, config: FeedConfig) -> str:
        """Return the websocket URL to connect to."""

    def subscribe_messages(self) -> list[str]:
        """Return the messages to send after connecting (none when the URL subscribes)."""
        return []

    @abc.abstractmethod
    def handle(self, frame: bytes, ts_init: int) -> None:
        """Parse one frame and publish what it says; raise on malformed input."""

    @abc.abstractmethod
    def snapshot_url(self, config: FeedConfig, instrument: Instrument) -> str:
        """Return the REST URL of a depth snapshot."""

    @abc.abstractmethod
    def parse_snapshot(self, body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
        """Parse a REST depth snapshot body."""

    def on_frame(self, frame: bytes | str, ts_init: int) -> None:
        """Handle a frame; a malformed one is counted and logged (throttled), never fatal."""
        if isinstance(frame, str):
            frame = frame.encode()
        stats = self.stats
        stats.messages += 1
        stats.last_message_ns = ts_init
        started = perf_ns()
        try:
            self.handle(frame, ts_init)
        except InvariantError:
            raise
        except (DataError, KeyError, ValueError, TypeError, IndexError) as exc:
            self.parse_error(type(exc).__name__, exc, frame)
        elapsed = perf_ns() - started
        stats.latency_buckets[bisect.bisect_left(LATENCY_BOUNDS_NS, elapsed)] += 1
        stats.latency_sum_ns += elapsed

    def parse_error(self, kind: str, exc: BaseException, frame: bytes) -> None:
        """Count a frame that could not be used and log it at most every 30 s per kind."""
        stats = self.stats
        stats.parse_errors[kind] = stats.parse_errors.get(kind, 0) + 1
        FEED_PARSE_ERRORS.labels(self.venue, kind).inc()
        suppressed = self._throttle.ready(kind)
        if suppressed is not None:
            log.warning("feed_frame_rejected", venue=self.venue, kind=kind, error=str(exc),
                        frame=frame[:200].decode(errors="replace"), suppressed=suppressed)

    def on_snapshot(self, snapshot: BookSnapshot) -> None:
        """Give a snapshot to its book."""
        self.books[snapshot.instrument].on_snapshot(snapshot)

    def reset_books(self, reason: str) -> None:
        """Forget all book state (a new connection) and ask for fresh snapshots."""
        now = self.clock.now_ns()
        for iid, book in self.books.items():
            book.reset(reason, now, now)
            self._need_snapshot(iid, reason)

    def invalidate_books(self, reason: str) -> None:
        """Mark every book invalid (disconnect, stale stream)."""
        now = self.clock.now_ns()
        for book in self.books.values():
            book.invalidate(reason, now, now)

    @property
    def books_valid(self) -> bool:
        """Return True when every book of this feed is synced."""
        return all(b.valid for b in self.books.values())

    def set_state(self, state: str, reason: str = "") -> None:
        """Record and publish a connection state change."""
        self.stats.state = state
        self.stats.reason = reason
        now = self.clock.now_ns()
        self.bus.publish(FeedStatus(venue=self.venue, state=state, reason=reason, ts_event=now,
                                    ts_init=now))


class FeedCollector(Collector):
    """Scrape-time metrics of every feed: messages, freshness, handler latency."""

    def __init__(self, feeds: list[Feed]) -> None:
        self._feeds = feeds

    def collect(self) -> Any:
        messages = CounterMetricFamily("tradebot_feed_messages", "Frames received",
                                       labels=["venue"])
        last = GaugeMetricFamily("tradebot_feed_last_message_timestamp_seconds",
                                 "Receive time of the latest frame", labels=["venue"])
        latency = HistogramMetricFamily(
            "tradebot_feed_handler_seconds",
            "Time from a frame's arrival to the end of everything it caused (parse, book, "
            "strategies, risk, paper venue)", labels=["venue"])
        for feed in self._feeds:
            st = feed.stats
            messages.add_metric([feed.venue], st.messages)
            last.add_metric([feed.venue], st.last_message_ns / 1e9)
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BOUNDS_NS, None), st.latency_buckets, strict=True):
                cumulative += count
                buckets.append((str(bound / 1e9) if bound else "+Inf", cumulative))
            latency.add_metric([feed.venue], buckets, st.latency_sum_ns / 1e9)
        yield messages
        yield last
        yield latency


def register_feed_metrics(feeds: list[Feed]) -> Callable[[], None]:
    """Expose the feeds' counters on /metrics; return a function that removes them."""
    collector = FeedCollector(feeds)
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


class _Stale(Exception):
    pass


class _Aged(Exception):
    pass


class FeedRunner:
    """Own one feed's websocket connection and REST snapshots; never give up, never crash."""

    def __init__(self, feed: Feed, config: FeedConfig, clock: Clock,
                 session: aiohttp.ClientSession) -> None:
        self.feed = feed
        self.config = config
        self.clock = clock
        self.session = session
        self._pending: dict[InstrumentId, asyncio.Task[None]] = {}
        self._last_request: dict[InstrumentId, float] = {}
        self._throttle = Throttle(30.0)
        self._connected_metric = FEED_CONNECTED.labels(feed.venue)
        self._connected_metric.set(0)
        self._connected = False
        feed.snapshot_needed = self.request_snapshot

    async def run(self) -> None:
        """Connect and reconnect forever (until cancelled)."""
        attempt = 0
        while True:
            reason = await self._session_once()
            self._connected = False
            self._connected_metric.set(0)
            FEED_RECONNECTS.labels(self.feed.venue, reason).inc()
            self.feed.invalidate_books(reason)
            self._cancel_snapshots()
            attempt = 0 if reason in ("stale", "max_age") and self.feed.stats.messages else attempt
            delay = self._backoff(attempt)
            attempt += 1
            self.feed.set_state("disconnected", reason)
            if self._throttle.ready(reason) is not None:
                log.warning("feed_disconnected", venue=self.feed.venue, reason=reason,
                            retry_in_s=round(delay, 3), attempt=attempt)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2 ** min(attempt, 30)))
        return random.uniform(cfg.backoff_initial_s, max(cfg.backoff_initial_s, cap))  # noqa: S311

    async def _session_once(self) -> str:
        feed = self.feed
        url = feed.url(self.config)
        feed.set_state("connecting")
        try:
            async with websockets.connect(url, max_size=2**24, open_timeout=10,
                                          ping_interval=20, ping_timeout=60,
                                          close_timeout=2) as ws:
                self._connected = True
                self._connected_metric.set(1)
                feed.set_state("connected")
                log.info("feed_connected", venue=feed.venue, url=url)
                for message in feed.subscribe_messages():
                    await ws.send(message)
                feed.reset_books("connect")
                await self._read(ws)
        except _Stale:
            return "stale"
        except _Aged:
            return "max_age"
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return _reason(exc)
        except websockets.ConnectionClosed as exc:
            return "closed_by_venue" if exc.rcvd is not None else "connection_lost"
        return "closed"

    async def _read(self, ws: Any) -> None:
        cfg = self.config
        opened = monotonic()
        while True:
            if monotonic() - opened > cfg.max_connection_age_s:
                raise _Aged
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=cfg.stale_after_s)
            except TimeoutError:
                raise _Stale from None
            self.feed.on_frame(frame, self.clock.now_ns())

    def request_snapshot(self, instrument: InstrumentId, reason: str) -> None:
        """Fetch a REST snapshot for `instrument` unless one is pending; rate-limited."""
        if not self._connected or instrument in self._pending:
            return
        wait = self._last_request.get(instrument, -1e9) + self.config.resync_min_interval_s
        delay = max(0.0, wait - monotonic())
        task = asyncio.get_running_loop().create_task(
            self._fetch(instrument, delay), name=f"snapshot:{self.feed.venue}:{instrument.symbol}"
        )
        self._pending[instrument] = task
        task.add_done_callback(lambda _t: self._pending.pop(instrument, None))

    async def _fetch(self, iid: InstrumentId, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.05))  # let the stream buffer a few deltas first
        inst = self.feed.instruments[iid]
        url = self.feed.snapshot_url(self.config, inst)
        attempt = 0
        while self._connected:
            self._last_request[iid] = monotonic()
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                snapshot = self.feed.parse_snapshot(body, inst, self.clock.now_ns())
            except (aiohttp.ClientError, TimeoutError, DataError, OSError) as exc:
                FEED_SNAPSHOT_ERRORS.labels(self.feed.venue).inc()
                log.warning("feed_snapshot_failed", venue=self.feed.venue, symbol=iid.symbol,
                            error=_reason(exc), attempt=attempt)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self.feed.on_snapshot(snapshot)
            return

    def _cancel_snapshots(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        self._pending.clear()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, OSError):
        return "network_error"
    if isinstance(exc, websockets.InvalidHandshake):
        return "handshake_failed"
    return type(exc).__name__.lower()
