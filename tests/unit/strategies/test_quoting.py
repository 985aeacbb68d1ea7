from __future__ import annotations

from decimal import Decimal

import pytest

from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import load_config
from tradebot.domain import InstrumentId, OrderStatus, OrderType, Side
from tradebot.errors import ConfigError
from tradebot.events import BookUpdated, CancelOrder, OrderIntent, OrderUpdated
from tradebot.order import Order, OrderState
from tradebot.strategies.base import StrategyRunner
from tradebot.strategies.registry import build_strategy

INSTRUMENTS = load_config(environ={}).instrument_map()
PERP = InstrumentId("BTC-USDT-PERP", "binance_usdm")
SPOT = InstrumentId("BTC-USDT", "binance")


class Book:
    def __init__(self) -> None:
        self.positions: dict[InstrumentId, Decimal] = {}

    def position(self, instrument: InstrumentId) -> Decimal:
        return self.positions.get(instrument, Decimal(0))

    def cash(self) -> Decimal:
        return Decimal(10_000)

    def equity(self) -> Decimal:
        return Decimal(10_000)


def _setup() -> tuple[Bus, SimClock, list[object]]:
    bus, clock = Bus(), SimClock(10**18)
    runner = StrategyRunner(bus, clock, Book(), INSTRUMENTS)
    runner.add(build_strategy("q", "quoting", {"min_requote_s": 1.0}), None)
    runner.start()
    out: list[object] = []
    bus.subscribe(OrderIntent, out.append)
    bus.subscribe(CancelOrder, out.append)
    return bus, clock, out


def _book(bus: Bus, iid: InstrumentId, bid: float, ask: float, now: int) -> None:
    bus.publish(BookUpdated(instrument=iid, best_bid=bid, best_bid_size=1.0, best_ask=ask,
                            best_ask_size=1.0, ts_event=now, ts_init=now))


def _update(bus: Bus, intent: OrderIntent, order_id: str, status: OrderStatus) -> None:
    state = OrderState(Order(order_id, intent.spec, 0), status, Decimal(0), Decimal(0))
    bus.publish(OrderUpdated(state=state, ts_event=0, ts_init=0))


def test_quotes_both_sides_post_only_at_the_touch_and_requotes_when_left_behind() -> None:
    bus, clock, out = _setup()
    _book(bus, PERP, 60000.0, 60000.1, clock.now_ns())
    bid, ask = out
    assert isinstance(bid, OrderIntent) and isinstance(ask, OrderIntent)
    assert (bid.spec.side, bid.spec.limit_price, ask.spec.side, ask.spec.limit_price) == \
        (Side.BUY, Decimal("60000.0"), Side.SELL, Decimal("60000.1"))
    assert bid.spec.post_only and bid.spec.order_type is OrderType.LIMIT
    assert bid.spec.quantity == Decimal("0.003")  # 200 / 60000 rounded down to the 0.001 lot
    _update(bus, bid, "B", OrderStatus.SUBMITTED)
    _update(bus, ask, "A", OrderStatus.SUBMITTED)
    _book(bus, PERP, 60000.1, 60000.2, clock.now_ns())  # one tick: keep the quotes
    assert len(out) == 2
    _book(bus, PERP, 60000.5, 60000.6, clock.now_ns())  # five ticks: move both
    cancels = [e for e in out if isinstance(e, CancelOrder)]
    assert sorted(c.order_id for c in cancels) == ["A", "B"]
    _update(bus, bid, "B", OrderStatus.CANCELED)
    clock.advance_to(clock.now_ns() + 1_500_000_000)
    _book(bus, PERP, 60000.5, 60000.6, clock.now_ns())
    assert isinstance(out[-1], OrderIntent) and out[-1].spec.limit_price == Decimal("60000.5")


def test_spot_sells_only_what_it_holds_and_bad_params_name_the_key() -> None:
    bus, clock, out = _setup()
    _book(bus, SPOT, 60000.0, 60000.01, clock.now_ns())
    assert [e.spec.side for e in out if isinstance(e, OrderIntent)] == [Side.BUY]
    with pytest.raises(ConfigError, match=r"strategies\.q\.params\.spread"):
        build_strategy("q", "quoting", {"spread": 1})
