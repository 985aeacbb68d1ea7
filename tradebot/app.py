"""The composition root: builds every component from Config, owns startup and shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import structlog
from prometheus_client import Counter

from tradebot.bus import Bus, register_bus_metrics
from tradebot.clock import Clock, LiveClock, SimClock, monotonic
from tradebot.config import Config
from tradebot.core.warmup import DAEMON_MODULES, warmup_daemon
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import ConfigError, DataError
from tradebot.events import Fill, OrderDenied, SubmitOrder
from tradebot.execution.base import Order
from tradebot.execution.engine import ExecutionEngine
from tradebot.execution.liquidation import Liquidator
from tradebot.execution.paper import PaperVenue
from tradebot.execution.toxicity import FillToxicity
from tradebot.features import FeatureEngine
from tradebot.feeds.base import Feed, register_feed_metrics
from tradebot.feeds.registry import build_feed, feed_class
from tradebot.feeds.replay import Recording, ReplayDriver, first_timestamp
from tradebot.feeds.runner import FeedRunner
from tradebot.log import Throttle
from tradebot.portfolio.funding import FundingScheduler
from tradebot.portfolio.portfolio import Portfolio
from tradebot.risk.engine import RiskEngine
from tradebot.server.http import HttpServer, Readiness, build_app
from tradebot.store import db
from tradebot.store.writer import StoreWriter
from tradebot.strategies.base import StrategyRunner
from tradebot.strategies.registry import build_strategy
from tradebot.systemd import WATCHDOG_SKIPS, Notifier

log = structlog.get_logger(__name__)

# Start time asked of systemd before each kernel module compiles: the slowest module, cold,
# on a Raspberry Pi class machine, with margin.
WARMUP_MODULE_BUDGET_S = 120.0

INSTRUMENT_FETCH_ERRORS = Counter(
    "tradebot_instrument_fetch_errors_total",
    "Venue instrument lists that could not be fetched at start (the config is used)", ["venue"],
)


class FillDigest:
    """A SHA-256 over the fill log, so two runs can be compared byte for byte."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def on_fill(self, fill: Fill) -> None:
        """Add one fill."""
        self._hash.update(
            f"{fill.fill_id}|{fill.instrument}|{fill.side.name}|{fill.quantity}|{fill.price}|"
            f"{fill.fee}|{fill.ts_event}|{fill.liquidity.value}|{fill.levels}|{fill.model}|"
            f"{fill.queue_ahead_entry}|{fill.queue_ahead_fill}|{fill.entry_latency_ns}|"
            f"{fill.response_latency_ns}|{fill.arrival_mid}|{fill.flags}\n".encode()
        )

    def hexdigest(self) -> str:
        """Return the digest so far."""
        return self._hash.hexdigest()


@dataclass(slots=True)
class Counts:
    orders: int = 0
    denied: int = 0
    fills: int = 0


class App:
    """Every component of one tradebot process, wired through one bus."""

    def __init__(self, config: Config, clock: Clock,
                 feed_instruments: dict[str, list[Instrument]] | None = None,
                 notifier: Notifier | None = None,
                 instruments: Mapping[InstrumentId, Instrument] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier or Notifier({})
        self.bus = bus = Bus()
        # Venue instrument lists (fetched at start, or carried by a recording); the config's
        # [[instruments]] override them.
        self.instruments = {**(instruments or {}), **config.instrument_map()}
        if feed_instruments is None:
            feed_instruments = {
                f.venue: [self.instruments[InstrumentId(s, f.venue)] for s in f.symbols]
                for f in config.feeds
            }
        for insts in feed_instruments.values():
            # What a feed follows, every component knows (risk, venue, strategies).
            for inst in insts:
                self.instruments.setdefault(inst.id, inst)
        self.feeds: dict[str, Feed] = {
            venue: build_feed(venue, insts, bus, clock) for venue, insts in feed_instruments.items()
        }
        self.books = {iid: book for f in self.feeds.values() for iid, book in f.books.items()}
        # The venue and the features read each book (BookView); the feeds keep it synced.
        book_views = {iid: sync.book for iid, sync in self.books.items()}
        self.engine = db.create_db_engine(config.database_url())
        self.portfolio = Portfolio(bus, clock, self.instruments, config.paper.account_currency,
                                   config.paper.starting_cash, config.state.equity_interval_s)
        self.risk = RiskEngine(bus, clock, self.portfolio, self.instruments, config.risk,
                               config.paper)
        self.execution = ExecutionEngine(bus, clock)
        self.venue = PaperVenue(self.execution, clock, bus, book_views, self.instruments,
                                config.paper, self.portfolio)
        self.execution.attach(self.venue)
        self.liquidator = Liquidator(bus, clock, self.venue, self.instruments)
        self.toxicity = FillToxicity(bus, config.paper.toxic_window_s,
                                     config.paper.toxic_move_bps)
        self.funding = FundingScheduler(bus, clock, self.portfolio, self.instruments,
                                        config.paper.funding_rate,
                                        config.paper.funding_interval_h)
        self.writer = StoreWriter(self.engine, config.state.writer_queue_size,
                                  config.state.writer_batch_size)
        # Subscribed before the strategies, so a strategy reading features sees this event's.
        self.features = FeatureEngine(bus, clock, book_views, config.features)
        if config.features.enabled:
            self.features.subscribe()
        self.strategies = StrategyRunner(bus, clock, self.portfolio, self.instruments,
                                         self.features.features)
        traded = frozenset(self.books)
        for sc in config.strategies:
            wanted = frozenset(InstrumentId.parse(t) for t in sc.instruments) or traded
            self.strategies.add(build_strategy(sc.name, sc.kind, sc.params), wanted)
        self.digest = FillDigest()
        self.counts = Counts()
        bus.subscribe(Fill, self.digest.on_fill)
        bus.subscribe(SubmitOrder, lambda _e: self._count("orders"))
        bus.subscribe(OrderDenied, lambda _e: self._count("denied"))
        bus.subscribe(Fill, lambda _e: self._count("fills"))
        self.ready = False
        self._unregister: list[Callable[[], None]] = []

    def _count(self, name: str) -> None:
        setattr(self.counts, name, getattr(self.counts, name) + 1)

    # --- startup pieces shared by live and replay -----------------------------------------

    def open_store(self) -> int:
        """Migrate, then rebuild the portfolio from recorded fills; return how many."""
        db.migrate(self.engine)
        cash = db.load_starting_cash(self.engine, self.portfolio.currency,
                                     self.config.paper.starting_cash, self.clock.now_ns())
        self.portfolio.set_starting_cash(cash)
        fills = db.load_fills(self.engine)
        for fill in fills:
            self.portfolio.on_fill(fill)
        for payment in db.load_funding(self.engine):
            self.portfolio.on_funding(payment)
        log.info("portfolio_rebuilt", fills=len(fills), cash=str(self.portfolio.cash()),
                 equity=str(self.portfolio.equity()))
        stored = db.count_orders(self.engine)
        self.risk.continue_ids(stored)
        self.liquidator.continue_ids(stored)
        # Subscribe only now, so rebuilt fills are not written twice.
        self.portfolio.start()
        self.writer.start(self.bus)
        self._restore_orders()
        self.funding.start()
        return len(fills)

    def _restore_orders(self) -> None:
        """Put the orders open at the last stop back at the venue (queue from the next book)."""
        for row in db.load_open_orders(self.engine):
            order = Order(order_id=row.order_id, strategy=row.strategy,
                          instrument=row.instrument, side=row.side, order_type=row.order_type,
                          quantity=row.quantity, limit_price=row.limit_price,
                          reduce_only=row.reduce_only, ts_submitted=row.ts_created,
                          time_in_force=row.time_in_force, post_only=row.post_only,
                          trigger=row.trigger, trigger_price=row.trigger_price)
            self.execution.restore(order, row.status, row.filled, row.notional, row.fills,
                                   row.ts_triggered)

    def _start_features(self) -> None:
        if self.config.features.enabled:
            self.features.start()

    def register_metrics(self) -> None:
        """Expose scrape-time collectors."""
        self._unregister.append(register_bus_metrics(self.bus))
        self._unregister.append(register_feed_metrics(list(self.feeds.values())))

    def close(self) -> None:
        """Flush and close the store, remove collectors (idempotent)."""
        self.portfolio.stop()
        self.funding.stop()
        self.features.stop()
        if not self.writer.close():
            log.error("store_close_incomplete")
        self.engine.dispose()
        for undo in self._unregister:
            undo()
        self._unregister.clear()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Return whether the service is ready, with per-venue detail and reasons."""
        reasons = []
        venues = {}
        now = self.clock.now_ns()
        for venue, feed in self.feeds.items():
            cfg = self._feed_config(venue)
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
        for venue, feed in self.feeds.items():
            valid = sum(b.valid for b in feed.books.values())
            parts.append(f"{venue} {feed.stats.state} {valid}/{len(feed.books)} books")
        equity = self.portfolio.equity().quantize(Decimal("0.01"))
        return "; ".join(parts) + f"; equity {equity} {self.portfolio.currency}"

    def _feed_config(self, venue: str) -> Any:
        return next((f for f in self.config.feeds if f.venue == venue), None)

    # --- live -----------------------------------------------------------------------------

    def _warm_kernels(self) -> None:
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

    async def run_live(self, stop: asyncio.Event | None = None) -> int:
        """Run until SIGTERM/SIGINT (or `stop`); return the exit status."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.open_store()
        self._warm_kernels()
        self.register_metrics()
        server = None
        if self.config.server.enabled:
            web = build_app(Readiness(self.readiness), self.portfolio.snapshot,
                            lambda: db.recent_fills(self.engine), self._orders_json,
                            bars=lambda iid, n: db.recent_bars(self.engine, iid, n),
                            features=self.features.snapshot)
            server = HttpServer(web, self.config.server.host, self.config.server.port)
            await server.start()
            self.server = server
        try:
            async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
                feed_tasks = [
                    tg.create_task(FeedRunner(feed, self._feed_config(v), self.clock,
                                              session).run(), name=f"feed:{v}")
                    for v, feed in self.feeds.items()
                ]
                await self._await_books(stop, self.config.watchdog.startup_book_timeout_s)
                self._start_features()
                self.strategies.start()
                self.ready = True
                self.notifier.ready(self.status_line())
                log.info("service_ready", status=self.status_line())
                watchdog = tg.create_task(self._watchdog(stop), name="watchdog")
                await stop.wait()
                await self._shutdown([*feed_tasks, watchdog])
        finally:
            if server is not None:
                await server.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        log.info("service_stopped")
        return 0

    async def _await_books(self, stop: asyncio.Event, timeout_s: float) -> None:
        deadline = monotonic() + timeout_s
        while not stop.is_set() and monotonic() < deadline:
            if all(f.books_valid for f in self.feeds.values()):
                return
            await asyncio.sleep(0.05)
        if not stop.is_set():
            log.warning("startup_without_books", status=self.status_line())

    async def _shutdown(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        self.notifier.stopping()
        log.info("service_stopping")
        self.strategies.stop()
        if self.config.paper.cancel_on_shutdown:
            for state in self.execution.open_orders():
                if state.status.value != "submitted":  # in flight: rejected at the next start
                    self.execution.canceled(state.order.order_id, "shutdown",
                                            self.clock.now_ns())
        self.portfolio.publish_equity()
        flushed = await asyncio.to_thread(self.writer.flush)
        if not flushed:
            log.error("store_flush_timed_out")
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(self.close)

    def watchdog_reasons(self, lag_s: float, published_before: int) -> list[str]:
        """Return why the watchdog must not be pinged now (empty: healthy).

        A connected feed whose bus saw nothing for a whole interval is stalled; a feed that is
        reconnecting is alive (its runner is in backoff) and does not hold the ping back, so a
        network outage does not turn into a restart loop.
        """
        cfg = self.config.watchdog
        reasons = []
        if lag_s > cfg.max_loop_lag_s:
            reasons.append("loop_lag")
        connected = any(f.stats.state == "connected" for f in self.feeds.values())
        if connected and self.bus.published == published_before:
            reasons.append("bus_stalled")
        if self.writer.queue_ratio > cfg.max_writer_queue_ratio:
            reasons.append("writer_behind")
        return reasons

    async def _watchdog(self, stop: asyncio.Event) -> None:
        interval = self.notifier.watchdog_interval_s or 5.0
        throttle = Throttle(60.0)
        published = self.bus.published
        while not stop.is_set():
            before = monotonic()
            await asyncio.sleep(interval)
            reasons = self.watchdog_reasons(monotonic() - before - interval, published)
            published = self.bus.published
            self.notifier.status(self.status_line())
            if not reasons:
                self.notifier.watchdog()
                continue
            for reason in reasons:
                WATCHDOG_SKIPS.labels(reason).inc()
            if throttle.ready(tuple(reasons)) is not None:
                log.warning("watchdog_withheld", reasons=reasons)

    def _orders_json(self) -> list[dict[str, Any]]:
        return [
            {"order_id": s.order.order_id, "instrument": str(s.order.instrument),
             "side": s.order.side.name, "type": s.order.order_type.value,
             "quantity": str(s.order.quantity),
             "limit_price": _text(s.order.limit_price),
             "trigger": s.order.trigger.value if s.order.trigger is not None else None,
             "trigger_price": _text(s.order.trigger_price), "triggered": s.ts_triggered > 0,
             "status": s.status.value, "filled": str(s.filled), "reason": s.reason}
            for s in list(self.execution.orders.values())[-100:]
        ]

    # --- replay ---------------------------------------------------------------------------

    async def run_replay(self, recordings: list[Recording], speed: float = 0.0,
                         progress: bool | None = None) -> dict[str, Any]:
        """Play recordings through the whole pipeline; return the summary."""
        if not isinstance(self.clock, SimClock):
            raise TypeError("replay needs a SimClock")
        if recordings:
            # Start simulated time at the first message, not at the epoch.
            self.clock.advance_to(first_timestamp(recordings[0].path))
        self.open_store()
        warmup_daemon()
        self._start_features()
        self.strategies.start()
        self.ready = True
        driver = ReplayDriver(self.feeds, self.clock, recordings)
        started = monotonic()
        await driver.run(speed=speed, progress=progress)
        elapsed = monotonic() - started
        self.strategies.stop()
        final = self.portfolio.publish_equity()
        self.close()
        return self._summary(driver.messages, elapsed, final.equity)

    def _summary(self, messages: int, elapsed: float, equity: Decimal) -> dict[str, Any]:
        books = [b for f in self.feeds.values() for b in f.books.values()]
        parse_errors = sum(sum(f.stats.parse_errors.values()) for f in self.feeds.values())
        return {
            "messages": messages,
            "gaps": sum(b.gaps for b in books),
            "resyncs": sum(b.resyncs for b in books),
            "parse_errors": parse_errors,
            "checksums_ok": sum(b.checksums_ok for b in books),
            "checksums_failed": sum(b.checksums_failed for b in books),
            "books_valid": all(b.valid for b in books),
            "books": {str(b.instrument.id): {"state": b.state.value, "gaps": b.gaps,
                                             "snapshots": b.snapshots,
                                             "stale_dropped": b.stale_dropped,
                                             "checksums_ok": b.checksums_ok,
                                             "checksums_failed": b.checksums_failed}
                      for b in books},
            "orders": self.counts.orders,
            "denied": self.counts.denied,
            "fills": self.counts.fills,
            "final_equity": str(equity),
            "fills_sha256": self.digest.hexdigest(),
            "elapsed_s": round(elapsed, 3),
            "messages_per_second": round(messages / elapsed) if elapsed > 0 else 0,
        }


def live_app(config: Config, notifier: Notifier,
             instruments: Mapping[InstrumentId, Instrument] | None = None) -> App:
    """Build the App for a live run."""
    return App(config, LiveClock(), notifier=notifier, instruments=instruments)


async def fetch_venue_instruments(config: Config) -> dict[InstrumentId, Instrument]:
    """Fetch the instrument lists of feeds with `instruments_from_venue` set.

    A venue that cannot be reached is logged and counted, and its feed falls back to the
    config's [[instruments]]; a symbol found in neither is a config error (exit 78).
    """
    found: dict[InstrumentId, Instrument] = {}
    feeds = [f for f in config.feeds if f.instruments_from_venue]
    if not feeds:
        return found
    async with aiohttp.ClientSession() as session:
        for cfg in feeds:
            cls = feed_class(cfg.venue)
            try:
                for url in cls.instruments_urls(cfg.venue, cfg):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
                        resp.raise_for_status()
                        body = await resp.read()
                    found.update((i.id, i) for i in cls.parse_instruments(cfg.venue, body)
                                 if i.id.symbol in cfg.symbols)
            except (aiohttp.ClientError, TimeoutError, OSError, DataError) as exc:
                INSTRUMENT_FETCH_ERRORS.labels(cfg.venue).inc()
                log.warning("instruments_fetch_failed", venue=cfg.venue, error=repr(exc))
    known = set(found) | set(config.instrument_map())
    for i, cfg in enumerate(config.feeds):
        missing = [s for s in cfg.symbols if InstrumentId(s, cfg.venue) not in known]
        if missing:
            raise ConfigError(f"{', '.join(missing)} on {cfg.venue}: not in the venue's "
                              "instrument list nor in [[instruments]]",
                              key=f"feeds[{i}].symbols", source=config.source)
    log.info("instruments_loaded", count=len(found))
    return found


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
