"""The venue-independent part of a feed: frame accounting, books, the hooks a venue fills in.

A venue module declares its `VenueSpec`s (feeds/spec.py) and subclasses `Feed` with its pure
parsers; `feeds/runner.py` owns the connections and replay drives the same `Feed` from a file.
The hooks of `Feed` read the spec; a venue overrides one only where it truly differs.
"""

from __future__ import annotations

import abc
import bisect
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

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
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import BookSync
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
    """One venue's market data: turn frames into events and keep its books correct.

    A venue class names its specs (`specs`, by venue); what they declare (endpoints, limits,
    keep-alive, snapshots, book rules) the hooks below read, so a venue overrides a hook only
    where it truly differs.
    """

    specs: ClassVar[Mapping[str, VenueSpec]]

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        spec = self.specs.get(venue)
        if spec is None:
            raise ValueError(f"unknown {type(self).__name__} venue {venue!r}")
        self.spec = spec
        self.venue = venue
        self.bus = bus
        self.clock = clock
        self.instruments = {i.id: i for i in instruments}
        self.stats = FeedStats()
        self.snapshot_needed: Callable[[InstrumentId, str], None] = lambda _i, _r: None
        rule = spec.sequence_rule()
        self.books = {
            iid: BookSync(inst, rule, bus, request_snapshot=self._need_snapshot)
            for iid, inst in self.instruments.items()
        }
        self._throttle = Throttle(30.0)

    def _need_snapshot(self, instrument: InstrumentId, reason: str) -> None:
        self.snapshot_needed(instrument, reason)

    @abc.abstractmethod
    def handle(self, frame: bytes, ts_init: int) -> None:
        """Parse one frame and publish what it says; raise on malformed input."""

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

    # --- connections: the spec's declarations, overridden where a venue differs ------------

    def split_subscriptions(self) -> list[list[Instrument]]:
        """Return the instruments of each connection, at most the spec's limit on each."""
        insts = list(self.instruments.values())
        step = self.spec.max_instruments_per_connection
        if step <= 0:
            return [insts]
        return [insts[i:i + step] for i in range(0, len(insts), step)] or [[]]

    async def prepare_connection(self, session: aiohttp.ClientSession,
                                 config: FeedConfig) -> None:
        """Do what a connection needs first (a venue's connect token); raise to retry later."""
        return None

    def connection_url(self, config: FeedConfig, instruments: Sequence[Instrument]) -> str:
        """Return the websocket URL of the connection carrying `instruments`."""
        return config.ws_url or self.spec.ws_url

    @abc.abstractmethod
    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the messages that subscribe `instruments` after connecting."""

    def keepalive(self) -> tuple[str | bytes, float] | None:
        """Return (message, interval in s) to send on each connection, or None."""
        return self.spec.keepalive

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str] | None:
        """Return messages that make the venue resend a book, or None to fetch a REST snapshot."""
        return None

    def snapshot_url(self, config: FeedConfig, instrument: Instrument) -> str:
        """Return the REST URL of a depth snapshot that bridges the stream.

        A venue without one (its books resync by resubscribing) raises DataError.
        """
        spec = self.spec
        if spec.snapshot_url is None:
            raise DataError(f"{self.venue} books resync by resubscribing, not from REST")
        return spec.snapshot_url(config.rest_url or spec.rest_url, instrument,
                                 config.snapshot_limit)

    def parse_snapshot(self, body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
        """Parse a REST depth snapshot body (see `snapshot_url`)."""
        if self.spec.snapshot_parser is None:
            raise DataError(f"{self.venue} REST depth cannot bridge the websocket book")
        return self.spec.snapshot_parser(body, instrument, ts_init)

    # --- book state across connections -------------------------------------------------

    def reset_books(self, reason: str, instruments: Iterable[InstrumentId] | None = None) -> None:
        """Forget the books' state (a new connection) and ask for fresh snapshots."""
        now = self.clock.now_ns()
        for iid in self.books if instruments is None else instruments:
            self.books[iid].reset(reason, now, now)
            if not self.spec.snapshot_on_subscribe:
                self._need_snapshot(iid, reason)

    def invalidate_books(self, reason: str,
                         instruments: Iterable[InstrumentId] | None = None) -> None:
        """Mark books invalid (disconnect, stale stream); all of them by default."""
        now = self.clock.now_ns()
        for iid in self.books if instruments is None else instruments:
            self.books[iid].invalidate(reason, now, now)

    def check_stale_books(self, now_ns: int,
                          instruments: Iterable[InstrumentId] | None = None) -> int:
        """Invalidate synced books silent for the spec's `book_stale_after_s`; return how many."""
        stale_after_s = self.spec.book_stale_after_s
        if stale_after_s <= 0:
            return 0
        max_age = int(stale_after_s * 1e9)
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
