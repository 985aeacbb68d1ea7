"""Whether the daemon is well: readiness, the systemd status line, the watchdog and warm-up.

The policy lives here, not in the composition root: `/readyz` and systemd's `STATUS=` read
`readiness()` and `status_line()`; the watchdog task pings systemd only while
`watchdog_reasons()` finds nothing wrong; kernel warm-up keeps systemd's start timer alive.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol

import structlog

from tradebot.bus import Bus
from tradebot.clock import Clock, monotonic
from tradebot.config import Config, FeedConfig
from tradebot.core.warmup import DAEMON_MODULES, warmup_daemon
from tradebot.feeds.base import Feed
from tradebot.log import Throttle
from tradebot.systemd import WATCHDOG_SKIPS, Notifier

log = structlog.get_logger(__name__)

# Start time asked of systemd before each kernel module compiles: the slowest module, cold,
# on a Raspberry Pi class machine, with margin.
WARMUP_MODULE_BUDGET_S = 120.0


class Equity(Protocol):
    """The portfolio as the status line reads it."""

    currency: str

    def equity(self) -> Decimal:
        """Return the account equity."""


class QueueRatio(Protocol):
    """The store writer as the watchdog reads it."""

    @property
    def queue_ratio(self) -> float:
        """Return how full the writer's queue is (0..1)."""


class Health:
    """Readiness, status and watchdog policy over the feeds, the bus and the store writer."""

    def __init__(self, config: Config, clock: Clock, bus: Bus, feeds: Mapping[str, Feed],
                 writer: QueueRatio, portfolio: Equity, notifier: Notifier) -> None:
        self._config = config
        self._clock = clock
        self._bus = bus
        self._feeds = feeds
        self._writer = writer
        self._portfolio = portfolio
        self.notifier = notifier
        self.ready = False

    def feed_config(self, venue: str) -> FeedConfig | None:
        """Return the [[feeds]] entry of `venue` (None for a replay-only venue)."""
        return next((f for f in self._config.feeds if f.venue == venue), None)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Return whether the service is ready, with per-venue detail and reasons."""
        reasons = []
        venues = {}
        now = self._clock.now_ns()
        for venue, feed in self._feeds.items():
            cfg = self.feed_config(venue)
            stale_ns = int((cfg.stale_after_s if cfg else 10.0) * 1e9)
            fresh = now - feed.stats.last_message_ns <= stale_ns
            books = {b.instrument.id.symbol: b.state.value for b in feed.books.values()}
            venues[venue] = {"state": feed.stats.state, "fresh": fresh, "books": books,
                             "reason": feed.stats.reason}
            if not fresh:
                reasons.append(f"{venue}: no data for over {stale_ns / 1e9:g}s")
            reasons += [f"{venue}: book {s} {st}" for s, st in books.items() if st != "synced"]
        if not self.ready:
            reasons.insert(0, "starting")
        return not reasons, {"reasons": reasons, "venues": venues}

    def status_line(self) -> str:
        """Return the one-line STATUS for systemd."""
        parts = []
        for venue, feed in self._feeds.items():
            valid = sum(b.valid for b in feed.books.values())
            parts.append(f"{venue} {feed.stats.state} {valid}/{len(feed.books)} books")
        equity = self._portfolio.equity().quantize(Decimal("0.01"))
        return "; ".join(parts) + f"; equity {equity} {self._portfolio.currency}"

    def mark_ready(self) -> None:
        """Report READY=1 with the status line."""
        self.ready = True
        self.notifier.ready(self.status_line())
        log.info("service_ready", status=self.status_line())

    def watchdog_reasons(self, lag_s: float, published_before: int) -> list[str]:
        """Return why the watchdog must not be pinged now (empty: healthy).

        A connected feed whose bus saw nothing for a whole interval is stalled; a feed that is
        reconnecting is alive (its runner is in backoff) and does not hold the ping back, so a
        network outage does not turn into a restart loop.
        """
        cfg = self._config.watchdog
        reasons = []
        if lag_s > cfg.max_loop_lag_s:
            reasons.append("loop_lag")
        connected = any(f.stats.state == "connected" for f in self._feeds.values())
        if connected and self._bus.published == published_before:
            reasons.append("bus_stalled")
        if self._writer.queue_ratio > cfg.max_writer_queue_ratio:
            reasons.append("writer_behind")
        return reasons

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Ping systemd's watchdog and refresh STATUS while healthy, until `stop` is set."""
        interval = self.notifier.watchdog_interval_s or 5.0
        throttle = Throttle(60.0)
        published = self._bus.published
        while not stop.is_set():
            before = monotonic()
            await asyncio.sleep(interval)
            reasons = self.watchdog_reasons(monotonic() - before - interval, published)
            published = self._bus.published
            self.notifier.status(self.status_line())
            if not reasons:
                self.notifier.watchdog()
                continue
            for reason in reasons:
                WATCHDOG_SKIPS.labels(reason).inc()
            if throttle.ready(tuple(reasons)) is not None:
                log.warning("watchdog_withheld", reasons=reasons)

    async def await_books(self, stop: asyncio.Event, timeout_s: float) -> None:
        """Wait until every feed's books are synced, `stop` is set or `timeout_s` passes."""
        deadline = monotonic() + timeout_s
        while not stop.is_set() and monotonic() < deadline:
            if all(f.books_valid for f in self._feeds.values()):
                return
            await asyncio.sleep(0.05)
        if not stop.is_set():
            log.warning("startup_without_books", status=self.status_line())

    def warm_kernels(self) -> None:
        """Compile (or load from the cache) every kernel, keeping systemd's start timer alive.

        A cold cache compiles for minutes on small hardware (40 s on a 2-core x86 machine), so
        each module first asks systemd for more start time instead of one fixed timeout
        having to cover the slowest machine.
        """
        started = monotonic()
        log.info("kernels_warming", modules=len(DAEMON_MODULES),
                 cache_dir=os.environ.get("NUMBA_CACHE_DIR", ""))

        def before(index: int, name: str) -> None:
            self.notifier.extend_timeout(
                WARMUP_MODULE_BUDGET_S,
                f"compiling kernels: {name} ({index + 1}/{len(DAEMON_MODULES)})")
            log.debug("kernels_module_warming", module=name, index=index + 1)

        warmup_daemon(before)
        log.info("kernels_warmed", seconds=round(monotonic() - started, 3))
