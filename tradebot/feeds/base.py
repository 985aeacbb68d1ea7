"""The venue-independent part of a feed: frame accounting, books, the hooks a venue fills in.

A venue module subclasses `Feed` with its endpoints and pure parsers; `feeds/runner.py` owns
the connections and replay drives the same `Feed` from a file. The optional hooks of `Feed`
default to a single connection, no keep-alive message and REST resyncs.
"""

from __future__ import annotations

import abc
import bisect
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import structlog
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from tradebot.bus import Bus
from tradebot.clock import Clock, perf_ns
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import DataError, InvariantError
from tradebot.events import BookSnapshot, FeedStatus
from tradebot.feeds.sync import BookSync, SequenceRule
from tradebot.log import Throttle

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

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
    # Instrument list: the venue module's pure parser `(body, venue) -> [Instrument]`, its REST
    # base and path; the hooks below use them unless a venue needs more (several markets).
    instruments_parser: ClassVar[Callable[[bytes, str], list[Instrument]] | None] = None
    rest_base_url: ClassVar[str] = ""
    instruments_path: ClassVar[str] = ""
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
        if not cls.instruments_path:
            return ""
        return (config.rest_url or cls.rest_base_url) + cls.instruments_path

    @classmethod
    def instruments_urls(cls, venue: str, config: FeedConfig) -> list[str]:
        """Return every URL of the venue's instrument lists (one per market type)."""
        url = cls.instruments_url(venue, config)
        return [url] if url else []

    @classmethod
    def parse_instruments(cls, venue: str, body: bytes) -> list[Instrument]:
        """Parse the venue's instrument list into Instruments with normalized symbols."""
        if cls.instruments_parser is None:
            raise DataError(f"{venue} has no instrument list parser")
        return cls.instruments_parser(body, venue)

    @classmethod
    def is_instruments_url(cls, venue: str, url: str) -> bool:
        """Return True when a recorded REST URL is the venue's instrument list."""
        return bool(cls.instruments_path) and cls.instruments_path in url

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
