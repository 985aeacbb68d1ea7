"""The composition root: builds every component from Config, owns startup and shutdown."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import structlog

from tradebot.bus import Bus, register_bus_metrics
from tradebot.clock import Clock, LiveClock, SimClock, monotonic
from tradebot.config import Config
from tradebot.core.warmup import warmup_daemon
from tradebot.domain import InstrumentId
from tradebot.execution.engine import ExecutionEngine
from tradebot.execution.fees import FeeSchedule
from tradebot.execution.liquidation import Liquidator
from tradebot.execution.paper import PaperVenue
from tradebot.execution.toxicity import FillToxicity
from tradebot.features import FeatureEngine
from tradebot.feeds.base import Feed, register_feed_metrics
from tradebot.feeds.instruments import RunInstruments, resolve
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import Recording, ReplayDriver, first_timestamp
from tradebot.feeds.runner import FeedRunner
from tradebot.health import Health
from tradebot.lifecycle import Component, Lifecycle
from tradebot.portfolio.funding import FundingScheduler
from tradebot.portfolio.portfolio import Portfolio
from tradebot.recovery import recover_portfolio, restore_open_orders
from tradebot.risk.engine import RiskEngine
from tradebot.server.api import daemon_api
from tradebot.server.http import HttpServer
from tradebot.store import db, lock
from tradebot.store.writer import StoreWriter
from tradebot.strategies.base import StrategyRunner
from tradebot.strategies.registry import build_strategy
from tradebot.summary import RunRecord, replay_summary
from tradebot.systemd import Notifier

log = structlog.get_logger(__name__)

# The last component started with the store; the ones after it (the strategies) start trading.
TRADING_STARTS_AFTER = "funding"
# A replay's store flush at the end (the daemon's is state.flush_timeout_s, under systemd's stop
# timeout).
REPLAY_FLUSH_TIMEOUT_S = 120.0


class App:
    """Every component of one tradebot process, wired through one bus."""

    def __init__(self, config: Config, clock: Clock, instruments: RunInstruments | None = None,
                 notifier: Notifier | None = None) -> None:
        self.config = config
        self.clock = clock
        self.bus = bus = Bus()
        # Resolved by feeds/instruments.py (default: the config's feeds and [[instruments]]).
        run = instruments if instruments is not None else resolve(config)
        self.instruments = dict(run.instruments)
        self.feeds: dict[str, Feed] = {
            venue: build_feed(venue, insts, bus, clock) for venue, insts in run.feeds.items()
        }
        self.books = {iid: book for f in self.feeds.values() for iid, book in f.books.items()}
        # The venue, the features and the strategies read each book (BookView); the feeds
        # keep it synced.
        book_views = {iid: sync.book for iid, sync in self.books.items()}
        self.engine = db.create_db_engine(config.database_url())
        self.state_lock = lock.StateLock(None, None)  # taken by open_store
        self.portfolio = Portfolio(bus, clock, self.instruments, config.paper.account_currency,
                                   config.paper.starting_cash, config.state.equity_interval_s)
        self.risk = RiskEngine(bus, clock, self.portfolio, self.instruments, config.risk,
                               config.paper.account_currency,
                               FeeSchedule(config.paper.fees).taker_rate)
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
        self.writer = StoreWriter(bus, self.engine, config.state.writer_queue_size,
                                  config.state.writer_batch_size, config.state.flush_timeout_s,
                                  config.state.close_timeout_s)
        self.features = FeatureEngine(bus, clock, book_views, config.features)
        self.strategies = StrategyRunner(bus, clock, self.portfolio, self.instruments,
                                         self.features.features, book_views)
        traded = frozenset(self.books)
        for sc in config.strategies:
            wanted = frozenset(InstrumentId.parse(t) for t in sc.instruments) or traded
            self.strategies.add(build_strategy(sc.name, sc.kind, sc.params), wanted)
        self.record = RunRecord(bus)
        self.health = Health(config, clock, bus, self.feeds, self.writer, self.portfolio,
                             notifier or Notifier({}))
        self.lifecycle = Lifecycle(self._components())
        self._unregister: list[Callable[[], None]] = []

    def _components(self) -> list[tuple[str, Component]]:
        """Return the components in start order, which is the bus's dispatch order.

        On a book update: risk keeps the book it prices intents with, the paper venue
        matches resting orders, the liquidator checks margin, toxicity follows recent fills,
        the features update, the portfolio marks, and the strategies, last, decide on all of
        that. On a fill: toxicity, the run record, the portfolio, the store, the strategies.
        The strategies start last, once the books are synced (`start_trading`).
        """
        features: list[tuple[str, Component]] = (
            [("features", self.features)] if self.config.features.enabled else [])
        return [
            ("risk", self.risk), ("execution", self.execution), ("venue", self.venue),
            ("liquidator", self.liquidator), ("toxicity", self.toxicity), *features,
            ("record", self.record), ("portfolio", self.portfolio), ("writer", self.writer),
            ("funding", self.funding), ("strategies", self.strategies),
        ]

    # --- startup pieces shared by live and replay -----------------------------------------

    def open_store(self) -> int:
        """Recover state, start every component but the strategies; return the fills folded.

        Lock the state (StateLocked when another process holds it), migrate, rebuild the
        portfolio from the stored fills (before the portfolio and the store subscribe, so they
        are not counted or written twice), start the components, then put the orders open at
        the last stop back at the venue.
        """
        self.state_lock = lock.acquire(self.config.database_url())
        recovered = recover_portfolio(self.engine, self.portfolio,
                                      self.config.paper.starting_cash, self.clock.now_ns())
        self.risk.continue_ids(recovered.orders)
        self.liquidator.continue_ids(recovered.orders)
        self.lifecycle.start(through=TRADING_STARTS_AFTER)
        restore_open_orders(self.engine, self.execution)
        return recovered.fills

    def start_trading(self) -> None:
        """Start the strategies (the books are synced, or a replay begins)."""
        self.lifecycle.start()

    def register_metrics(self) -> None:
        """Expose scrape-time collectors."""
        self._unregister.append(register_bus_metrics(self.bus))
        self._unregister.append(register_feed_metrics(list(self.feeds.values())))

    def close(self) -> None:
        """Flush and close the store, remove collectors (idempotent)."""
        self.lifecycle.stop()
        self.engine.dispose()
        self.state_lock.release()
        for undo in self._unregister:
            undo()
        self._unregister.clear()

    # --- live -----------------------------------------------------------------------------

    async def run_live(self, stop: asyncio.Event | None = None) -> int:
        """Run until SIGTERM/SIGINT (or `stop`); return the exit status."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.open_store()
        self.health.warm_kernels()
        self.register_metrics()
        server = None
        if self.config.server.enabled:
            web = daemon_api(self.health, self.portfolio, self.engine, self.execution,
                             self.features)
            server = HttpServer(web, self.config.server.host, self.config.server.port)
            await server.start()
            self.server = server
        try:
            async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
                feed_tasks = [
                    tg.create_task(FeedRunner(self.feeds[cfg.venue], cfg, self.clock,
                                              session).run(), name=f"feed:{cfg.venue}")
                    for cfg in self.config.feeds
                ]
                await self.health.await_books(stop,
                                              self.config.watchdog.startup_book_timeout_s)
                self.start_trading()
                self.health.mark_ready()
                watchdog = tg.create_task(self.health.watchdog(stop), name="watchdog")
                await stop.wait()
                await self._shutdown([*feed_tasks, watchdog])
        finally:
            if server is not None:
                await server.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        # Facts the writer could not commit in time are lost: say so in the exit status.
        log.info("service_stopped", store_complete=not self.writer.closed_incomplete)
        return 1 if self.writer.closed_incomplete else 0

    async def _shutdown(self, tasks: Iterable[asyncio.Task[Any]]) -> None:
        self.health.notifier.stopping()
        log.info("service_stopping")
        self.strategies.stop()
        if self.config.paper.cancel_on_shutdown:
            for state in self.execution.open_orders():
                if state.status.value != "submitted":  # in flight: rejected at the next start
                    self.execution.canceled(state.order.order_id, "shutdown",
                                            self.clock.now_ns())
        self.portfolio.publish_equity()
        # Bounded (state.flush_timeout_s); the writer logs and counts a timeout.
        await asyncio.to_thread(self.writer.flush)
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(self.close)

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
        self.start_trading()
        self.health.ready = True
        driver = ReplayDriver(self.feeds, self.clock, recordings)
        started = monotonic()
        await driver.run(speed=speed, progress=progress)
        elapsed = monotonic() - started
        self.strategies.stop()
        final = self.portfolio.publish_equity()
        # No stop deadline here: let the writer drain the backlog a fast replay leaves.
        self.writer.flush(timeout=REPLAY_FLUSH_TIMEOUT_S)
        self.close()
        return replay_summary(self.feeds.values(), self.record, driver.messages, elapsed,
                              final.equity, damaged=driver.damaged,
                              clock_jumps=driver.clock_jumps)


def live_app(config: Config, notifier: Notifier, instruments: RunInstruments | None = None) -> App:
    """Build the App for a live run."""
    return App(config, LiveClock(), notifier=notifier, instruments=instruments)
