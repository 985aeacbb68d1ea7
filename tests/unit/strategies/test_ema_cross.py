from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import load_config
from tradebot.core.signals import ema_cross_batch, ema_cross_state, ema_cross_update
from tradebot.domain import InstrumentId, Side
from tradebot.events import BookUpdated, OrderIntent
from tradebot.strategies.base import StrategyRunner
from tradebot.strategies.ema_cross import EmaCross

INSTRUMENTS = load_config(environ={}).instrument_map()
PERP = InstrumentId("BTC-USDT-PERP", "binance_usdm")


def reference(ts: list[float], prices: list[float], fast: float, slow: float,
              band: float) -> list[float]:
    """Irregular-time EMA (weight 1 - exp(-dt/tau)), written independently of the kernel."""
    import math

    out, f, s, sig = [], prices[0], prices[0], 0.0
    for i, (t, p) in enumerate(zip(ts, prices, strict=True)):
        if i:
            dt = t - ts[i - 1]
            f += (1 - math.exp(-dt / fast)) * (p - f)
            s += (1 - math.exp(-dt / slow)) * (p - s)
        if t - ts[0] < slow:
            out.append(0.0)
            continue
        sig = 1.0 if f > s * (1 + band) else -1.0 if f < s * (1 - band) else sig
        out.append(sig)
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5), st.floats(90, 110)), min_size=2, max_size=200))
def test_kernel_matches_the_reference(samples: list[tuple[float, float]]) -> None:
    ts = list(np.cumsum([dt for dt, _ in samples]))
    prices = [p for _, p in samples]
    got = ema_cross_batch(np.array(ts), np.array(prices), 2.0, 10.0, 0.0001)
    assert got.tolist() == reference(ts, prices, 2.0, 10.0, 0.0001)


def test_bad_prices_are_ignored() -> None:
    state = ema_cross_state()
    ema_cross_update(state, 0.0, 100.0, 1.0, 2.0, 0.0)
    before = state.copy()
    assert ema_cross_update(state, 1.0, float("nan"), 1.0, 2.0, 0.0) == 0.0
    assert ema_cross_update(state, 1.0, -5.0, 1.0, 2.0, 0.0) == 0.0
    assert np.array_equal(state, before, equal_nan=True)


class Flat:
    def position(self, instrument: InstrumentId) -> Decimal:
        return Decimal(0)

    def cash(self) -> Decimal:
        return Decimal(10_000)

    def equity(self) -> Decimal:
        return Decimal(10_000)


def tick(bus: Bus, clock: SimClock, i: int, price: float) -> None:
    """Publish the book of step `i` (200 ms apart) with `price` as its bid."""
    t = i * 200_000_000
    clock.advance_to(t)
    bus.publish(BookUpdated(instrument=PERP, best_bid=price, best_bid_size=1,
                            best_ask=price + 0.1, best_ask_size=1, ts_event=t, ts_init=t))


def ema_on(portfolio: Flat, cooldown_s: float) -> tuple[Bus, SimClock, EmaCross,
                                                         list[OrderIntent]]:
    """Start one EmaCross (1 s / 5 s, 200 USDT) on PERP; return its bus, clock and intents."""
    bus, clock = Bus(), SimClock(0)
    runner = StrategyRunner(bus, clock, portfolio, INSTRUMENTS)
    strat = EmaCross("ema", {"fast_tau_s": 1, "slow_tau_s": 5, "band_bps": 1,
                             "order_notional": "200", "cooldown_s": cooldown_s})
    runner.add(strat, frozenset({PERP}))
    runner.start()
    intents: list[OrderIntent] = []
    bus.subscribe(OrderIntent, intents.append)
    return bus, clock, strat, intents


def test_an_up_cross_emits_one_buy_intent_sized_to_the_notional() -> None:
    bus, clock, _, intents = ema_on(Flat(), cooldown_s=100)
    for i in range(100):
        tick(bus, clock, i, 50_000.0 + (0 if i < 50 else (i - 50) * 10))
    assert len(intents) == 1
    assert intents[0].spec.side is Side.BUY
    assert intents[0].spec.quantity == Decimal("0.003")  # 200 / ~50,300 rounded down to 0.001 lots


def test_a_strategy_exception_is_counted_and_the_daemon_continues() -> None:
    bus, clock = Bus(), SimClock(0)
    runner = StrategyRunner(bus, clock, Flat(), INSTRUMENTS)

    class Broken(EmaCross):
        def on_book(self, event: BookUpdated) -> None:
            raise ZeroDivisionError("boom")

    runner.add(Broken("broken", {}), None)
    runner.start()
    from tests.conftest import metric

    before = metric("tradebot_strategy_errors_total", strategy="broken")
    bus.publish(BookUpdated(instrument=PERP, best_bid=1.0, best_bid_size=1, best_ask=2.0,
                            best_ask_size=1, ts_event=0, ts_init=0))
    assert metric("tradebot_strategy_errors_total", strategy="broken") == before + 1


class Holding(Flat):
    def __init__(self) -> None:
        self.qty = Decimal(0)

    def position(self, instrument: InstrumentId) -> Decimal:
        return self.qty


def test_it_trades_on_a_new_signal_or_position_not_on_a_price_drift() -> None:
    book = Holding()
    bus, clock, strat, intents = ema_on(book, cooldown_s=0)
    for i in range(60):
        tick(bus, clock, i, 50_000.0 + max(0, i - 50) * 10)
    assert [x.spec.quantity for x in intents] == [Decimal("0.003")]
    book.qty = Decimal("0.003")  # filled
    strat.on_order(_done(intents[0]))
    for i in range(60, 200):  # still up, and the price rises until 200 USDT buys only 0.002
        tick(bus, clock, i, 50_100.0 + (i - 60) * 400)
    assert len(intents) == 1
    book.qty = Decimal(0)  # the position closed behind its back (a liquidation, say)
    tick(bus, clock, 200, 106_100.0)
    assert [x.spec.quantity for x in intents[1:]] == [Decimal("0.001")]  # 200 USDT's worth again


def _done(intent: OrderIntent):  # type: ignore[no-untyped-def]
    from tradebot.domain import OrderStatus
    from tradebot.events import OrderUpdated
    from tradebot.order import Order, OrderState

    state = OrderState(Order("o", intent.spec, 0), OrderStatus.FILLED, intent.spec.quantity,
                       Decimal(0))
    return OrderUpdated(state=state, ts_event=0, ts_init=0)
