"""The venue-independent part of a feed: frame accounting, books, the connection runner.

A venue module subclasses `Feed` with its endpoints and pure parsers; `FeedRunner` owns the
connections: connect, subscribe, keep-alive messages, reconnect with exponential backoff and
jitter, a stale-data deadline per connection and per book, a planned reconnect before the
venue's connection age limit, one connection per group of subscriptions where the venue caps
streams per connection, and book resyncs with a per-book rate limit (a REST snapshot, or an
unsubscribe/subscribe where the venue resends its book that way). Replay drives the same
`Feed` from a file. The optional hooks of `Feed` default to a single connection, no
keep-alive message and REST resyncs.
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import functools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

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
_T = TypeVar("_T")

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


# What malformed venue input raises in a parser (a changed schema: a missing key, a wrong type).
PARSE_ERRORS = (DataError, KeyError, ValueError, TypeError, IndexError, AttributeError,
                ArithmeticError)


def as_data_error(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Wrap a pure parser so that malformed input raises DataError only."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except DataError:
            raise
        except PARSE_ERRORS as exc:
            raise DataError(f"{fn.__name__}: {type(exc).__name__}: {exc}") from exc

    return wrapper


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


# A frame tap (the recorder): (kind "recv" | "send" | "rest", receive ns, url, payload).
Tap = Callable[[str, int, str, bytes], None]


class Feed(abc.ABC):
    """One venue's market data: turn frames into events and keep its books correct."""

    venue: str
    # A synced book that hears nothing for this long is invalid (0: only the connection's
    # stale deadline applies). Venues that heartbeat each book channel set it.
    book_stale_after_s: float = 0.0
    # True where subscribing makes the venue send each book's snapshot itself, so a new
    # connection needs no snapshot request.
    snapshot_on_subscribe: bool = False

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

    def snapshot_url(self, config: FeedConfig, instrument: Instrument) -> str:
        """Return the REST URL of a depth snapshot.

        By default a venue has none that bridges its stream (its books resync by
        resubscribing): venues with a REST bridge (Binance, KuCoin, ...) override both.
        """
        raise DataError(f"{self.venue} books resync by resubscribing, not from REST")

    def parse_snapshot(self, body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
        """Parse a REST depth snapshot body (see `snapshot_url`)."""
        raise DataError(f"{self.venue} REST depth cannot bridge the websocket book")

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
        except PARSE_ERRORS as exc:
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

    # --- optional venue hooks ----------------------------------------------------------

    async def prepare_connection(self, session: aiohttp.ClientSession,
                                 config: FeedConfig) -> None:
        """Do what a connection needs first (a venue's connect token); raise to retry later."""
        return None

    def keepalive(self) -> tuple[str | bytes, float] | None:
        """Return (message, interval in s) to send on each connection, or None."""
        return None

    def split_subscriptions(self) -> list[list[Instrument]]:
        """Return the instruments of each connection (one list: a single connection)."""
        return [list(self.instruments.values())]

    def connection_url(self, config: FeedConfig, instruments: Sequence[Instrument]) -> str:
        """Return the websocket URL of the connection carrying `instruments`."""
        return self.url(config)

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the messages that subscribe `instruments` after connecting."""
        return self.subscribe_messages()

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str] | None:
        """Return messages that make the venue resend a book, or None to fetch a REST snapshot."""
        return None

    @classmethod
    def instruments_url(cls, venue: str, config: FeedConfig) -> str:
        """Return the REST URL of the venue's instrument list ('' when not supported)."""
        return ""

    @classmethod
    def instruments_urls(cls, venue: str, config: FeedConfig) -> list[str]:
        """Return every URL of the venue's instrument lists (one per market type)."""
        url = cls.instruments_url(venue, config)
        return [url] if url else []

    @classmethod
    def parse_instruments(cls, venue: str, body: bytes) -> list[Instrument]:
        """Parse the venue's instrument list into Instruments with normalized symbols."""
        raise DataError(f"{venue} has no instrument list parser")

    @classmethod
    def is_instruments_url(cls, venue: str, url: str) -> bool:
        """Return True when a recorded REST URL is the venue's instrument list."""
        return False

    @classmethod
    def recorded_instruments(cls, client_frames: Sequence[bytes],
                             instruments: Iterable[Instrument]) -> list[Instrument]:
        """Return the instruments a recording subscribed, from the frames the client sent."""
        tokens: set[str] = set()
        for frame in client_frames:
            text = frame.decode(errors="replace").upper()
            for sep in '"{}[],:@ ':
                text = text.replace(sep, "\n")
            tokens.update(text.split())
        return [i for i in instruments if i.venue_symbol.upper() in tokens]

    def instrument_for_url(self, url: str) -> Instrument | None:
        """Return the instrument a REST snapshot URL asks for (None: not one of ours)."""
        values = {v for _, v in parse_qsl(urlsplit(url).query)}
        for inst in self.instruments.values():
            if inst.venue_symbol in values:
                return inst
        return None

    # --- book state across connections -------------------------------------------------

    def reset_books(self, reason: str, instruments: Iterable[InstrumentId] | None = None) -> None:
        """Forget the books' state (a new connection) and ask for fresh snapshots."""
        now = self.clock.now_ns()
        for iid in self.books if instruments is None else instruments:
            self.books[iid].reset(reason, now, now)
            if not self.snapshot_on_subscribe:
                self._need_snapshot(iid, reason)

    def invalidate_books(self, reason: str,
                         instruments: Iterable[InstrumentId] | None = None) -> None:
        """Mark books invalid (disconnect, stale stream); all of them by default."""
        now = self.clock.now_ns()
        for iid in self.books if instruments is None else instruments:
            self.books[iid].invalidate(reason, now, now)

    def check_stale_books(self, now_ns: int,
                          instruments: Iterable[InstrumentId] | None = None) -> int:
        """Invalidate synced books silent for `book_stale_after_s`; return how many."""
        if self.book_stale_after_s <= 0:
            return 0
        max_age = int(self.book_stale_after_s * 1e9)
        return sum(self.books[iid].check_stale(now_ns, max_age)
                   for iid in (self.books if instruments is None else instruments))

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
        checksums = CounterMetricFamily("tradebot_book_checksums_verified",
                                        "Venue book checksums that matched", labels=["venue"])
        latency = HistogramMetricFamily(
            "tradebot_feed_handler_seconds",
            "Time from a frame's arrival to the end of everything it caused (parse, book, "
            "strategies, risk, paper venue)", labels=["venue"])
        for feed in self._feeds:
            st = feed.stats
            messages.add_metric([feed.venue], st.messages)
            last.add_metric([feed.venue], st.last_message_ns / 1e9)
            checksums.add_metric([feed.venue],
                                 sum(b.checksums_ok for b in feed.books.values()))
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BOUNDS_NS, None), st.latency_buckets, strict=True):
                cumulative += count
                buckets.append((str(bound / 1e9) if bound else "+Inf", cumulative))
            latency.add_metric([feed.venue], buckets, st.latency_sum_ns / 1e9)
        yield messages
        yield last
        yield checksums
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
    """Own one feed's websocket connections and book resyncs; never give up, never crash."""

    def __init__(self, feed: Feed, config: FeedConfig, clock: Clock,
                 session: aiohttp.ClientSession, tap: Tap | None = None) -> None:
        self.feed = feed
        self.config = config
        self.clock = clock
        self.session = session
        self._tap = tap
        self._shards = [s for s in feed.split_subscriptions() if s] or [[]]
        self._shard_of = {inst.id: n for n, shard in enumerate(self._shards) for inst in shard}
        self._sockets: dict[int, Any] = {}
        self._pending: dict[InstrumentId, asyncio.Task[None]] = {}
        self._last_request: dict[InstrumentId, float] = {}
        self._throttle = Throttle(30.0)
        self._connected_metric = FEED_CONNECTED.labels(feed.venue)
        self._connected_metric.set(0)
        feed.snapshot_needed = self.request_snapshot

    @property
    def connections(self) -> int:
        """Return the number of connections the feed's subscriptions need."""
        return len(self._shards)

    async def run(self) -> None:
        """Connect and reconnect every connection forever (until cancelled)."""
        if len(self._shards) == 1:
            await self._run_connection(0)
            return
        async with asyncio.TaskGroup() as tg:
            for n in range(len(self._shards)):
                tg.create_task(self._run_connection(n), name=f"feed:{self.feed.venue}:{n}")

    async def _run_connection(self, n: int) -> None:
        ids = [inst.id for inst in self._shards[n]]
        attempt = 0
        while True:
            reason = await self._session_once(n)
            self._sockets.pop(n, None)
            self._connected_metric.set(len(self._sockets))
            FEED_RECONNECTS.labels(self.feed.venue, reason).inc()
            self.feed.invalidate_books(reason, ids)
            self._cancel_snapshots(ids)
            attempt = 0 if reason in ("stale", "max_age") and self.feed.stats.messages else attempt
            delay = self._backoff(attempt)
            attempt += 1
            self.feed.set_state("disconnected", reason)
            if self._throttle.ready(reason) is not None:
                log.warning("feed_disconnected", venue=self.feed.venue, reason=reason,
                            retry_in_s=round(delay, 3), attempt=attempt, connection=n)
            await asyncio.sleep(delay)

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2 ** min(attempt, 30)))
        return random.uniform(cfg.backoff_initial_s, max(cfg.backoff_initial_s, cap))  # noqa: S311

    async def _session_once(self, n: int) -> str:
        feed = self.feed
        shard = self._shards[n]
        feed.set_state("connecting")
        try:
            # A venue's pre-connect step (KuCoin's bullet token) fails like a connect does.
            await feed.prepare_connection(self.session, self.config)
            url = feed.connection_url(self.config, shard)
            async with websockets.connect(url, max_size=2**24, open_timeout=10,
                                          ping_interval=20, ping_timeout=60,
                                          close_timeout=2) as ws:
                self._sockets[n] = ws
                self._connected_metric.set(len(self._sockets))
                feed.set_state("connected")
                log.info("feed_connected", venue=feed.venue, url=url, connection=n)
                for message in feed.connection_messages(shard):
                    await self._send(ws, url, message)
                feed.reset_books("connect", [inst.id for inst in shard])
                await self._read(ws, url, shard)
        except _Stale:
            return "stale"
        except _Aged:
            return "max_age"
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return _reason(exc)
        except websockets.ConnectionClosed as exc:
            return "closed_by_venue" if exc.rcvd is not None else "connection_lost"
        except (aiohttp.ClientError, DataError) as exc:
            log.warning("feed_prepare_failed", venue=feed.venue, error=repr(exc), connection=n)
            return "prepare_failed"
        return "closed"

    async def _send(self, ws: Any, url: str, message: str | bytes) -> None:
        if self._tap is not None:
            self._tap("send", self.clock.now_ns(), url,
                      message.encode() if isinstance(message, str) else message)
        await ws.send(message)

    async def _read(self, ws: Any, url: str, shard: Sequence[Instrument]) -> None:
        cfg = self.config
        feed = self.feed
        ids = [inst.id for inst in shard]
        opened = monotonic()
        next_book_check = opened + 1.0
        keepalive = feed.keepalive()
        pinger = None
        if keepalive is not None:
            pinger = asyncio.get_running_loop().create_task(
                self._keepalive(ws, url, *keepalive), name=f"keepalive:{feed.venue}")
        try:
            while True:
                now = monotonic()
                if now - opened > cfg.max_connection_age_s:
                    raise _Aged
                if now >= next_book_check:
                    next_book_check = now + 1.0
                    feed.check_stale_books(self.clock.now_ns(), ids)
                try:
                    # asyncio.timeout, not wait_for: no inner task whose completion can race
                    # (and swallow) a cancellation at shutdown on Python 3.11.
                    async with asyncio.timeout(cfg.stale_after_s):
                        frame = await ws.recv()
                except TimeoutError:
                    raise _Stale from None
                ts = self.clock.now_ns()
                if self._tap is not None:
                    self._tap("recv", ts, url, frame.encode() if isinstance(frame, str) else frame)
                feed.on_frame(frame, ts)
        finally:
            if pinger is not None:
                pinger.cancel()

    async def _keepalive(self, ws: Any, url: str, message: str | bytes, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                await self._send(ws, url, message)
        except websockets.ConnectionClosed:
            return

    def request_snapshot(self, instrument: InstrumentId, reason: str) -> None:
        """Resync `instrument`'s book unless a resync is pending; rate-limited per book.

        A REST snapshot, or the venue's resubscribe messages where it resends books that way.
        """
        n = self._shard_of.get(instrument)
        if n is None or n not in self._sockets or instrument in self._pending:
            return
        wait = self._last_request.get(instrument, -1e9) + self.config.resync_min_interval_s
        delay = max(0.0, wait - monotonic())
        messages = self.feed.resync_messages(self.feed.instruments[instrument], reason)
        coro = (self._fetch(instrument, n, delay) if messages is None
                else self._resubscribe(instrument, n, messages, delay))
        task = asyncio.get_running_loop().create_task(
            coro, name=f"resync:{self.feed.venue}:{instrument.symbol}")
        self._pending[instrument] = task
        task.add_done_callback(lambda _t: self._pending.pop(instrument, None))

    async def _resubscribe(self, iid: InstrumentId, n: int, messages: list[str],
                           delay: float) -> None:
        await asyncio.sleep(delay)
        ws = self._sockets.get(n)
        if ws is None:
            return
        self._last_request[iid] = monotonic()
        log.info("feed_resubscribing", venue=self.feed.venue, symbol=iid.symbol)
        try:
            for message in messages:
                await self._send(ws, ws_url(ws), message)
        except websockets.ConnectionClosed:
            return  # the connection loop reconnects, and reconnecting resubscribes

    async def _fetch(self, iid: InstrumentId, n: int, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.05))  # let the stream buffer a few deltas first
        inst = self.feed.instruments[iid]
        url = self.feed.snapshot_url(self.config, inst)
        attempt = 0
        while n in self._sockets:
            self._last_request[iid] = monotonic()
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                ts = self.clock.now_ns()
                if self._tap is not None:
                    self._tap("rest", ts, url, body)
                snapshot = self.feed.parse_snapshot(body, inst, ts)
            except (aiohttp.ClientError, TimeoutError, DataError, OSError) as exc:
                FEED_SNAPSHOT_ERRORS.labels(self.feed.venue).inc()
                log.warning("feed_snapshot_failed", venue=self.feed.venue, symbol=iid.symbol,
                            error=_reason(exc), attempt=attempt)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self.feed.on_snapshot(snapshot)
            return

    def _cancel_snapshots(self, ids: Iterable[InstrumentId]) -> None:
        for iid in ids:
            task = self._pending.pop(iid, None)
            if task is not None:
                task.cancel()


def ws_url(ws: Any) -> str:
    """Return the URL a websocket client connection was opened with ('' when unknown)."""
    request = getattr(ws, "request", None)
    return str(getattr(request, "path", "")) if request is not None else ""


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
