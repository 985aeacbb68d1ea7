"""Replays of real Binance recordings through the whole pipeline with the paper venue."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.conftest import data_file
from tradebot.app import App
from tradebot.clock import SimClock
from tradebot.config import Config, StrategyConfig, load_config
from tradebot.domain import InstrumentId, OrderStatus, OrderType, Side, TriggerType
from tradebot.events import (
    BookUpdated,
    CancelOrder,
    Fill,
    OrderIntent,
    OrderUpdated,
    Trade,
)
from tradebot.feeds.instruments import resolve
from tradebot.feeds.replay import Recording, inspect
from tradebot.order import OrderSpec
from tradebot.server.api import orders_json
from tradebot.strategies.base import Strategy

USDM_BTC = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
PERP = InstrumentId("BTC-USDT-PERP", "binance_usdm")


def _config(tmp: Path, name: str, **paper: Any) -> Config:
    cfg = load_config(environ={})
    return dataclasses.replace(
        cfg, state=dataclasses.replace(cfg.state, database_url=f"sqlite:///{tmp}/{name}.db"),
        paper=dataclasses.replace(cfg.paper, **paper),
        strategies=[StrategyConfig(name="quoting", kind="quoting")])


def _app(cfg: Config, rec: Recording) -> App:
    insts = [i for i in cfg.instrument_map().values()
             if i.id.venue == rec.venue and i.venue_symbol in rec.depth_symbols]
    return App(cfg, SimClock(), instruments=resolve(cfg, feeds={rec.venue: insts}))


class OneBid(Strategy):
    """Keep one post-only bid at the best bid and check every fill against a reference queue.

    The reference is the conservative model written out independently: queue ahead = size
    shown at the price on arrival, minus traded volume at the price, capped by the shown size.
    """

    def __init__(self, app: App) -> None:
        super().__init__("onebid", {})
        self.app = app
        self.order_id: str | None = None
        self.price = Decimal(0)
        self.ahead = Decimal(0)
        self.remaining = Decimal(0)
        self.crossed = False
        self.pending = False
        self.got = Decimal(0)
        self.checked_fills: list[tuple[Fill, Decimal]] = []  # (fill, traded at price before)
        self.traded = Decimal(0)
        self.mismatches: list[str] = []

    def _shown(self, price: Decimal) -> Decimal:
        book = self.app.books[PERP].book
        return dict(book.levels(1, 200)).get(price, Decimal(0))

    def on_book(self, event: BookUpdated) -> None:
        bid = Decimal(repr(event.best_bid))
        if self.order_id is None and not self.pending:
            self.pending = True
            now = self.ctx.clock.now_ns()
            spec = OrderSpec(strategy=self.name, instrument=PERP, side=Side.BUY,
                             quantity=Decimal("0.002"), order_type=OrderType.LIMIT,
                             limit_price=bid, post_only=True)
            self.ctx._bus.publish(OrderIntent(intent_id=f"ob-{now}", spec=spec, ts_event=now,
                                              ts_init=now))
            return
        if self.order_id is None:
            return
        self.ahead = min(self.ahead, self._shown(self.price))
        if Decimal(repr(event.best_ask)) <= self.price:
            self.crossed = True
        if bid - self.price > Decimal(2):
            now = self.ctx.clock.now_ns()
            self.ctx._bus.publish(CancelOrder(order_id=self.order_id, strategy=self.name,
                                              ts_event=now, ts_init=now))

    def on_order(self, event: OrderUpdated) -> None:
        state = event.state
        spec = state.order.spec
        if state.status is OrderStatus.SUBMITTED:
            self.order_id, self.pending = state.order.order_id, False
            self.price = spec.limit_price or Decimal(0)
            self.remaining, self.crossed, self.traded = spec.quantity, False, Decimal(0)
        elif state.status is OrderStatus.ACCEPTED:
            self.ahead = self._shown(self.price)
        elif state.status.is_terminal:
            self.order_id = None

    def on_fill(self, event: Fill) -> None:
        self.got += event.quantity
        self.checked_fills.append((event, self.traded))

    def on_trade(self, event: Trade) -> None:
        got, self.got = self.got, Decimal(0)
        if (self.order_id is None and not got) or self.crossed or event.aggressor is Side.BUY:
            return
        price, size = Decimal(repr(event.price)), Decimal(repr(event.size))
        expected = Decimal(0)
        if price < self.price:
            expected = self.remaining
        elif price == self.price:
            expected = max(Decimal(0), min(self.remaining, size - self.ahead))
            self.ahead = max(Decimal(0), self.ahead - size)
            self.traded += size
        if got != expected:
            self.mismatches.append(f"trade {event.trade_id}: filled {got}, expected {expected}")
        self.remaining -= expected


def test_resting_bids_fill_only_after_the_volume_traded_at_their_price_passes_the_queue(
        tmp_path: Path) -> None:
    rec = inspect(data_file(USDM_BTC))
    app = _app(_config(tmp_path, "onebid", latency={}), rec)
    app.strategies._strategies.clear()
    probe = OneBid(app)
    app.strategies.add(probe, frozenset({PERP}))
    summary = asyncio.run(app.run_replay([rec], progress=False))
    queue_fills = [(f, t) for f, t in probe.checked_fills if f.model.startswith("queue")]
    assert not probe.mismatches, probe.mismatches[:5]
    assert len(queue_fills) >= 3, summary  # 4 on this recording
    deep = [(f, t) for f, t in queue_fills if f.queue_ahead_entry]
    assert deep, "no fill had a queue ahead of it"
    for fill, traded_before in deep:
        # it waited: the volume traded at its price before its fill print did not reach it
        assert fill.queue_ahead_fill is not None and fill.queue_ahead_entry is not None
        assert traded_before <= fill.queue_ahead_entry


def test_quoting_replay_is_deterministic_and_keeps_the_books_exact(tmp_path: Path) -> None:
    rec = inspect(data_file(USDM_BTC))
    results = []
    for run in range(2):
        app = _app(_config(tmp_path, f"det{run}", queue_model="power"), rec)
        summary = asyncio.run(app.run_replay([rec], progress=False))
        results.append(summary)
        # every fill already passed the exact accounting check; check the end state too
        app.portfolio.check_invariant("end of replay")
    first, second = results
    assert first["fills"] >= 50, first
    assert first["fills_sha256"] == second["fills_sha256"]
    assert first["final_equity"] == second["final_equity"]


class DeepBid(Strategy):
    """Buy a little at market, then leave one bid far below the market; record what it sees."""

    def __init__(self, app: App) -> None:
        super().__init__("deepbid", {})
        self.app = app
        self.sent = False
        self.watch = False
        self.first_book: tuple[int, Decimal] | None = None

    def on_book(self, event: BookUpdated) -> None:
        if self.first_book is None and self.watch:
            (order,) = self.app.venue.orders.values()
            book = self.app.books[PERP].book
            self.first_book = (order.ahead, dict(book.levels(1, 2000)).get(
                PERP_INST.price_from_units(order.limit), Decimal(0)))
        if self.sent:
            return
        self.sent = True
        now = self.ctx.clock.now_ns()
        self.ctx.submit(PERP, Side.BUY, Decimal("0.002"))
        bid = Decimal(repr(event.best_bid)) - Decimal(300)  # never reached in this recording
        spec = OrderSpec(strategy=self.name, instrument=PERP, side=Side.BUY,
                         quantity=Decimal("0.002"), order_type=OrderType.LIMIT, limit_price=bid)
        self.ctx._bus.publish(OrderIntent(intent_id=f"db-{now}", spec=spec, ts_event=now,
                                          ts_init=now))


PERP_INST = load_config(environ={}).instrument_map()[PERP]


def _replay_with(cfg: Config, rec: Recording,
                 strategy: Callable[[App], Strategy] | None) -> App:
    """Replay `rec` with only `strategy` (None: no strategy); return the app after it."""
    app = _app(cfg, rec)
    app.strategies._strategies.clear()
    if strategy is not None:
        app.strategies.add(strategy(app), frozenset({PERP}))
    asyncio.run(app.run_replay([rec], progress=False))
    return app


def test_a_resting_order_survives_a_restart_with_its_queue_recomputed(tmp_path: Path) -> None:
    rec = inspect(data_file(USDM_BTC))
    cfg = _config(tmp_path, "restart")
    first = _replay_with(cfg, rec, DeepBid)
    states = list(first.execution.orders.values())
    still_open = [s for s in states if not s.status.is_terminal]
    assert len(still_open) == 1, states
    (resting,) = still_open
    cash, position = first.portfolio.cash(), first.portfolio.position(PERP)
    assert position == Decimal("0.002")

    second = _app(cfg, rec)
    second.strategies._strategies.clear()
    probe = DeepBid(second)
    probe.sent = probe.watch = True
    second.strategies.add(probe, frozenset({PERP}))
    asyncio.run(second.run_replay([rec], progress=False))
    state = second.execution.orders[resting.order.order_id]
    assert state.status is OrderStatus.ACCEPTED
    assert state.order == resting.order
    assert second.portfolio.cash() == cash and second.portfolio.position(PERP) == position
    assert probe.first_book is not None
    ahead, shown = probe.first_book
    assert ahead >= 0 and PERP_INST.size_from_units(ahead) == shown


class StopLimitBelow(Strategy):
    """Submit one buy stop-limit: trigger one tick above the ask, limit far below the market,
    so the trigger trades soon and the limit then rests without filling."""

    def __init__(self, app: App) -> None:
        super().__init__("stoplimit", {})
        self.app = app
        self.sent = False

    def on_book(self, event: BookUpdated) -> None:
        if self.sent:
            return
        self.sent = True
        ask = Decimal(repr(event.best_ask))
        self.ctx.submit(PERP, Side.BUY, Decimal("0.002"), order_type=OrderType.LIMIT,
                        limit_price=ask - Decimal(300), trigger=TriggerType.STOP,
                        trigger_price=ask + PERP_INST.tick_size)


def test_a_triggered_stop_limit_comes_back_resting_not_waiting_after_a_restart(
        tmp_path: Path) -> None:
    rec = inspect(data_file(USDM_BTC))
    cfg = _config(tmp_path, "stoplimit")
    first = _replay_with(cfg, rec, StopLimitBelow)
    (state,) = first.execution.orders.values()
    assert state.status is OrderStatus.ACCEPTED and state.ts_triggered > 0, state
    (sim,) = first.venue.orders.values()
    assert sim.triggered and sim.ahead >= 0
    (served,) = orders_json(first.execution.orders.values())  # what /api/orders shows
    assert served["trigger"] == "stop" and served["triggered"] is True
    assert served["type"] == "limit" and served["limit_price"] == str(state.order.spec.limit_price)

    second = _replay_with(cfg, rec, None)
    again = second.execution.orders[state.order.order_id]
    assert again.status is OrderStatus.ACCEPTED
    assert again.ts_triggered == state.ts_triggered
    (restored,) = second.venue.orders.values()
    orders = second.venue.matcher.orders_of(PERP)
    assert restored.triggered and restored not in orders.waiting
    # Resting in the book: its queue was recomputed from the first valid book.
    assert restored.ahead >= 0


def test_a_restart_values_the_position_at_the_last_mark_until_the_first_book(
        tmp_path: Path) -> None:
    rec = inspect(data_file(USDM_BTC))
    cfg = _config(tmp_path, "marks")
    first = _replay_with(cfg, rec, DeepBid)
    assert first.portfolio.position(PERP) == Decimal("0.002")
    mark, final = first.portfolio.mark(PERP), first.portfolio.equity()
    assert first.portfolio.unrealized() != 0  # the mark moved away from the entry price

    second = _app(cfg, rec)
    second.open_store()  # the restart, before any book arrives
    try:
        assert second.portfolio.mark(PERP) == mark
        assert second.portfolio.equity() == final
        assert second.portfolio.snapshot()["equity"] == str(final)  # what /api/portfolio says
    finally:
        second.close()
