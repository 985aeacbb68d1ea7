"""The fold: exact accounting, cost basis through flips, funding, invariant violations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.execution.harness import PERP, SPOT, START_NS, Harness
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import InstrumentId, Liquidity, OrderType, Side
from tradebot.errors import InvariantError
from tradebot.events import BookUpdated, Fill, FundingPayment, FundingRate
from tradebot.execution.liquidation import Liquidator
from tradebot.portfolio.funding import FundingScheduler, next_funding_ns
from tradebot.portfolio.portfolio import Portfolio

INSTRUMENTS = {PERP.id: PERP, SPOT.id: SPOT}
_n = 0


def fill(iid: InstrumentId, side: Side, qty: str, price: str, fee: str = "0") -> Fill:
    global _n
    _n += 1
    return Fill(fill_id=f"F{_n}", order_id="O", strategy="s", instrument=iid, side=side,
                quantity=Decimal(qty), price=Decimal(price), fee=Decimal(fee),
                fee_currency="USDT", liquidity=Liquidity.TAKER, levels=(), slippage_bps=0.0,
                ts_event=1, ts_init=1)


def mark(bus: Bus, iid: InstrumentId, bid: float, ask: float) -> None:
    bus.publish(BookUpdated(instrument=iid, best_bid=bid, best_bid_size=1.0, best_ask=ask,
                            best_ask_size=1.0, ts_event=1, ts_init=1))


@pytest.fixture
def pf() -> tuple[Bus, Portfolio]:
    bus = Bus()
    p = Portfolio(bus, SimClock(START_NS), INSTRUMENTS, "USDT", Decimal(10_000), 3600.0)
    p.start()
    return bus, p


def test_perp_round_trip_through_a_flip_is_exact(pf: tuple[Bus, Portfolio]) -> None:
    bus, p = pf
    mark(bus, PERP.id, 100.0, 100.1)
    bus.publish(fill(PERP.id, Side.BUY, "3", "100.0", "0.15"))
    bus.publish(fill(PERP.id, Side.BUY, "1", "101.3", "0.05"))
    pos = p.positions[PERP.id]
    assert pos.cost == Decimal("401.3")
    bus.publish(fill(PERP.id, Side.SELL, "6", "102.0", "0.3"))  # closes 4, opens 2 short
    # closed 4 at 102: 408 - 401.3 = 6.7 realized; short 2 opened at 102
    assert p.realized == Decimal("6.7") and pos.quantity == -2 and pos.cost == Decimal("-204.0")
    assert p.cash() == Decimal(10_000) + Decimal("6.7") - Decimal("0.5")
    mark(bus, PERP.id, 101.0, 101.0)
    assert p.unrealized() == Decimal("2.0")  # short 2 from 102 marked at 101
    assert p.equity() == Decimal("10008.2")
    p.check_invariant("test")


def test_spot_partial_close_keeps_the_identity_exact(pf: tuple[Bus, Portfolio]) -> None:
    bus, p = pf
    mark(bus, SPOT.id, 33.33, 33.34)
    for q, px in (("1", "33.33"), ("2", "33.34"), ("0.7", "33.37")):
        bus.publish(fill(SPOT.id, Side.BUY, q, px, "0.0333"))
    bus.publish(fill(SPOT.id, Side.SELL, "1.1", "33.41", "0.0367"))  # 1.1/3.7 of the cost
    bus.publish(fill(SPOT.id, Side.SELL, "0.3", "33.29"))
    mark(bus, SPOT.id, 33.35, 33.36)
    p.check_invariant("test")  # raises on any rounding anywhere
    assert p.positions[SPOT.id].quantity == Decimal("2.3")


def test_a_negative_balance_is_an_invariant_violation(pf: tuple[Bus, Portfolio]) -> None:
    bus, _ = pf
    with pytest.raises(InvariantError, match="cash"):
        bus.publish(fill(SPOT.id, Side.BUY, "200", "100.00"))
    bus2 = Bus()
    p2 = Portfolio(bus2, SimClock(START_NS), INSTRUMENTS, "USDT", Decimal(10_000), 3600.0)
    p2.start()
    with pytest.raises(InvariantError, match="negative"):
        bus2.publish(fill(SPOT.id, Side.SELL, "1", "100.00"))


def test_funding_is_charged_at_the_funding_time_at_the_feed_rate(
        pf: tuple[Bus, Portfolio]) -> None:
    bus, p = pf
    clock = p._clock  # the portfolio's SimClock
    assert isinstance(clock, SimClock)
    funding = FundingScheduler(bus, clock, p, INSTRUMENTS, Decimal("0.0001"), 8)
    funding.start()
    payments: list[FundingPayment] = []
    bus.subscribe(FundingPayment, payments.append)
    mark(bus, PERP.id, 100.0, 100.2)
    bus.publish(fill(PERP.id, Side.SELL, "2", "100.1"))
    bus.publish(FundingRate(instrument=PERP.id, rate=-0.0003, next_funding_ns=None,
                            ts_event=1, ts_init=1))
    due = next_funding_ns(START_NS, 8)
    assert due % (8 * 3600 * 10**9) == 0 and due > START_NS
    clock.advance_to(due - 1)
    assert not payments
    clock.advance_to(due)
    (pay,) = payments
    # short 2 x mark 100.1 x -0.0003: shorts pay when the rate is negative
    assert pay.amount == Decimal("0.06006") and pay.position == -2
    assert p.funding == Decimal("0.06006")
    assert p.cash() == Decimal(10_000) - Decimal("0.06006")
    p.check_invariant("test")


def test_liquidation_closes_perp_positions_below_maintenance_margin() -> None:
    h = Harness(starting_cash=Decimal(10_000))
    h.levels(PERP, bids=[("99.9", "1000")], asks=[("100.0", "1000")])
    h.submit(PERP, Side.BUY, "900", OrderType.MARKET)  # 90k notional on 10k equity
    liq = Liquidator(h.bus, h.clock, h.venue, h.instruments)
    liq.start()
    assert not liq.check()
    # equity 10000 - 45 fee + 900 * (89.05 - 100) = 100 < maintenance 900 * 89.05 * 0.005
    h.levels(PERP, bids=[("99.9", "0"), ("89.0", "1000")], asks=[("100.0", "0"), ("89.1", "1000")])
    assert liq.liquidations == 1  # the book update itself ran the check
    assert h.portfolio.position(PERP.id) == 0
    assert h.fills[-1].strategy == "liquidation" and h.fills[-1].side is Side.SELL
    # The intent took id 1 of the liquidator's counter, the order id 2.
    assert h.fills[-1].order_id == f"LIQ-{h.clock.now_ns():x}-2"
    assert h.engine.orders[h.fills[-1].order_id].order.spec.internal
