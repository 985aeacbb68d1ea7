"""Venue rules, conditional orders, reduce-only, fees and latency draws."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.unit.execution.harness import PERP, SPOT, Harness, latency
from tradebot.config import FeeConfig, FeeTierConfig, LatencyConfig
from tradebot.domain import Liquidity, OrderStatus, OrderType, Side
from tradebot.events import TriggerType
from tradebot.execution.fees import FeeSchedule
from tradebot.execution.latency import LatencyModel
from tradebot.order import OrderState


@pytest.fixture
def h() -> Harness:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "50")], asks=[("100.0", "50"), ("100.5", "50")])
    h.levels(SPOT, bids=[("99.99", "500")], asks=[("100.00", "500")])
    h.trade(PERP, "100.0", "0.1", Side.BUY)
    return h


@pytest.mark.parametrize(("inst", "qty", "price", "code"), [
    (PERP, "1", "99.95", "tick_size"),
    (PERP, "0.0005", "99.9", "lot_size"),
    (PERP, "0.05", "99.9", "min_notional"),  # 4.995 < 10
    (SPOT, "101", "99.00", "insufficient_balance"),  # 9999 + 0.1% fee > 10000 cash
    (PERP, "1002", "99.9", "insufficient_margin"),  # 100099.8 / 10x leverage > 10000 equity
])
def test_venue_rules_reject_with_a_reason(h: Harness, inst: object, qty: str, price: str,
                                          code: str) -> None:
    oid = h.limit(inst, Side.BUY, qty, price)  # type: ignore[arg-type]
    assert h.status(oid) is OrderStatus.REJECTED
    assert h.reason(oid).split(":")[0] == code


def test_spot_cannot_sell_what_it_does_not_hold_and_reserves_resting_orders(h: Harness) -> None:
    oid = h.limit(SPOT, Side.SELL, "1", "100.00")
    assert h.reason(oid).startswith("insufficient_balance")
    h.limit(SPOT, Side.BUY, "60", "99.00")  # reserves 5940 * 1.001
    second = h.limit(SPOT, Side.BUY, "60", "99.00")
    assert h.reason(second).startswith("insufficient_balance")


def test_reduce_only_must_reduce_and_is_capped_at_the_position(h: Harness) -> None:
    oid = h.submit(PERP, Side.SELL, "1", OrderType.MARKET, reduce_only=True)
    assert h.reason(oid).startswith("reduce_only")
    h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    close = h.submit(PERP, Side.SELL, "1", OrderType.MARKET, reduce_only=True)
    assert h.status(close) is OrderStatus.FILLED
    assert h.portfolio.position(PERP.id) == 0


def test_stop_market_waits_for_its_trigger_then_takes(h: Harness) -> None:
    oid = h.stop(PERP, Side.BUY, "1", "100.4")
    assert h.status(oid) is OrderStatus.ACCEPTED and not h.fills
    h.trade(PERP, "100.3", "1", Side.BUY)
    assert not h.fills
    h.trade(PERP, "100.4", "1", Side.BUY)
    (fill,) = h.fills
    assert fill.price == Decimal("100.0") and fill.liquidity is Liquidity.TAKER


def test_stop_that_would_trigger_immediately_is_rejected(h: Harness) -> None:
    oid = h.stop(PERP, Side.BUY, "1", "99.9")  # last trade 100.0 is already above
    assert h.reason(oid).startswith("would_trigger_immediately")


def test_stop_limit_rests_at_its_limit_after_the_trigger(h: Harness) -> None:
    oid = h.stop(PERP, Side.SELL, "1", "99.5", limit="99.4")
    h.trade(PERP, "99.5", "1", Side.SELL)
    assert h.fills_of(oid)[0].price == Decimal("99.9")  # marketable: takes the bid
    h2 = Harness()
    h2.levels(PERP, bids=[("99.0", "5")], asks=[("100.0", "5")])
    h2.trade(PERP, "100.0", "1", Side.BUY)
    rests = h2.stop(PERP, Side.SELL, "1", "99.5", limit="99.4")
    h2.trade(PERP, "99.5", "1", Side.SELL)
    assert not h2.fills and h2.venue.orders[rests].ahead == 0  # resting at 99.4


def test_take_profit_fires_when_the_price_moves_in_favour(h: Harness) -> None:
    h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    tp = h.stop(PERP, Side.SELL, "1", "101.0", kind=TriggerType.TAKE_PROFIT)
    h.trade(PERP, "100.9", "1", Side.BUY)
    assert h.status(tp) is OrderStatus.ACCEPTED
    h.trade(PERP, "101.0", "1", Side.BUY)
    assert h.status(tp) is OrderStatus.FILLED


def test_fee_tiers_follow_the_traded_notional() -> None:
    fees = FeeSchedule({"v": FeeConfig(maker=Decimal("0.001"), taker=Decimal("0.002"), tiers=[
        FeeTierConfig(min_volume=Decimal(1000), maker=Decimal("0.0005"), taker=Decimal("0.001")),
        FeeTierConfig(min_volume=Decimal(5000), maker=Decimal("-0.0001"),
                      taker=Decimal("0.0008")),
    ])})
    assert fees.rate("v", Liquidity.TAKER, Decimal(999)) == Decimal("0.002")
    assert fees.rate("v", Liquidity.MAKER, Decimal(1000)) == Decimal("0.0005")
    assert fees.rate("v", Liquidity.MAKER, Decimal(9000)) == Decimal("-0.0001")
    assert fees.rate("other", Liquidity.TAKER, Decimal(0)) == 0
    assert fees.max_rate("v") == Decimal("0.002")


def test_latency_draws_are_seeded_per_venue_and_within_their_distribution() -> None:
    cfg = LatencyConfig(distribution="uniform", entry_ms=75, response_ms=150, jitter_ms=25)
    a = [LatencyModel(cfg, 7, "binance").entry_ns() for _ in range(3)]
    one = LatencyModel(cfg, 7, "binance")
    assert [one.entry_ns() for _ in range(3)] != a or len(set(a)) == 1
    draws = [LatencyModel(cfg, 7, "binance"), LatencyModel(cfg, 7, "binance")]
    seq = [[m.entry_ns() for _ in range(50)] for m in draws]
    assert seq[0] == seq[1]
    assert all(50_000_000 <= x <= 100_000_000 for x in seq[0])
    other = LatencyModel(cfg, 7, "coinbase")
    assert [other.entry_ns() for _ in range(50)] != seq[0]
    const = LatencyModel(LatencyConfig(distribution="constant", entry_ms=12.5), 0, "x")
    assert const.entry_ns() == 12_500_000
    assert LatencyModel(None, 0, "x").response_ns() == 0


def test_a_trigger_is_reported_before_the_fills_it_leads_to(h: Harness) -> None:
    oid = h.stop(PERP, Side.BUY, "1", "100.4")
    h.trade(PERP, "100.4", "1", Side.BUY)
    mine = [u.state for u in h.updates if u.state.order.order_id == oid]
    assert [(u.status, u.reason) for u in mine] == [
        (OrderStatus.SUBMITTED, ""), (OrderStatus.ACCEPTED, ""),
        (OrderStatus.ACCEPTED, "triggered"), (OrderStatus.FILLED, "triggered")]
    assert mine[1].ts_triggered == 0
    assert mine[2].ts_triggered == h.clock.now_ns() == mine[3].ts_triggered


@pytest.mark.parametrize(("limit", "triggered", "where"), [
    (None, False, "waiting"),  # a stop market whose trigger never traded waits again
    ("99.4", False, "waiting"),
    ("99.4", True, "resting"),  # a triggered stop-limit rests at its limit
    (None, True, "execution_lost_at_restart"),  # executed, report lost: never executed twice
])
def test_restored_conditional_orders_resume_where_they_were(
        limit: str | None, triggered: bool, where: str) -> None:
    before = Harness()
    before.levels(PERP, bids=[("99.0", "5")], asks=[("100.0", "5")])
    before.trade(PERP, "100.0", "1", Side.BUY)
    oid = before.stop(PERP, Side.SELL, "1", "99.5", limit=limit)
    order = before.engine.orders[oid].order

    after = Harness()
    after.levels(PERP, bids=[("99.0", "5")], asks=[("100.0", "5")])
    after.engine.restore(OrderState(order, OrderStatus.ACCEPTED, Decimal(0), Decimal(0),
                                    ts_triggered=before.clock.now_ns() if triggered else 0))
    sets = after.venue.matcher.orders_of(PERP.id)
    if where == "execution_lost_at_restart":
        assert after.status(oid) is OrderStatus.CANCELED and after.reason(oid) == where
        assert not after.fills and oid not in after.venue.orders
        return
    sim = after.venue.orders[oid]
    assert (sim in sets.waiting) is (where == "waiting")
    assert (sim in sets.resting) is (where == "resting")
    assert sim.triggered is triggered
    after.levels(PERP, asks=[("99.4", "3")])
    if where == "resting":
        assert sim.ahead == 3 * 10**3  # the queue comes from the first book after the restart
    after.trade(PERP, "99.5", "1", Side.SELL)  # fires a waiting stop
    if limit is None:
        assert after.status(oid) is OrderStatus.FILLED  # took the 99.0 bid
    else:
        assert after.status(oid) is OrderStatus.ACCEPTED and sim in sets.resting


def test_an_internal_order_skips_latency_and_account_checks_a_strategy_name_does_not() -> None:
    h = Harness(latency=latency(50, 50))
    h.levels(PERP, bids=[("99.9", "50")], asks=[("100.0", "50")])
    named = h.submit(PERP, Side.SELL, "1", OrderType.MARKET, reduce_only=True,
                     strategy="liquidation")
    assert h.status(named) is OrderStatus.SUBMITTED  # travels the entry latency
    h.advance(200)
    assert h.reason(named).startswith("reduce_only")  # and meets the venue's checks
    internal = h.submit(PERP, Side.SELL, "1", OrderType.MARKET, reduce_only=True,
                        strategy="flatten", internal=True)
    # At once, past the reduce-only check; with no position there is nothing to fill.
    assert h.status(internal) is OrderStatus.CANCELED
    assert h.reason(internal) == "reduce_only_position_closed" and not h.fills
