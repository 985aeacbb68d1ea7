"""Hand-computed queue scenarios: position at entry, trades, cancels, partial fills."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.execution.harness import PERP, Harness, latency
from tradebot.domain import Liquidity, OrderStatus, Side
from tradebot.execution.queue import ConservativeQueue, PowerQueue, trade_fill


def _book(h: Harness) -> None:
    h.levels(PERP, bids=[("99.9", "2"), ("99.8", "5")], asks=[("100.0", "3")])


def test_resting_bid_fills_only_after_traded_volume_exceeds_the_queue_ahead() -> None:
    h = Harness()
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    assert h.venue.orders[oid].ahead == 2000  # 2.000 shown at 99.9 when it arrived
    h.trade(PERP, "99.9", "1.5", Side.SELL)
    assert not h.fills and h.venue.orders[oid].ahead == 500
    h.trade(PERP, "100.0", "5", Side.BUY)  # other side: no effect
    h.trade(PERP, "99.9", "1.0", Side.SELL)  # 0.5 reaches past the queue
    (first,) = h.fills
    assert first.quantity == Decimal("0.500") and first.price == Decimal("99.9")
    assert first.liquidity is Liquidity.MAKER and first.model == "queue/conservative"
    assert first.queue_ahead_entry == Decimal("2.000")
    assert first.queue_ahead_fill == Decimal("0.500")
    assert first.fee == Decimal("0.00999")  # 0.5 * 99.9 * 0.0002
    assert h.status(oid) is OrderStatus.PARTIALLY_FILLED
    h.trade(PERP, "99.9", "2", Side.SELL)
    assert h.fills[-1].quantity == Decimal("0.500") and h.status(oid) is OrderStatus.FILLED


def test_conservative_model_caps_the_queue_at_a_smaller_displayed_size() -> None:
    h = Harness()
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.levels(PERP, bids=[("99.9", "0.8")])  # cancels: at most 0.8 can be ahead now
    assert h.venue.orders[oid].ahead == 800
    h.levels(PERP, bids=[("99.9", "4")])  # joins behind us
    assert h.venue.orders[oid].ahead == 800
    h.trade(PERP, "99.9", "1", Side.SELL)
    assert h.fills[-1].quantity == Decimal("0.200")


def test_power_model_splits_a_cancel_by_the_cube_of_the_queue_sizes() -> None:
    h = Harness(queue_model="power", queue_exponent=3.0)
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.levels(PERP, bids=[("99.9", "3")])  # 1.0 joins behind: ahead 2, behind 1
    h.levels(PERP, bids=[("99.9", "2")])  # 1.0 cancelled: 8/9 of it ahead
    assert h.venue.orders[oid].ahead == 2000 - 889
    h.trade(PERP, "99.9", "1.2", Side.SELL)
    fill = h.fills[-1]
    assert fill.quantity == Decimal("0.089") and fill.model == "queue/power"


def test_power_model_reference_values() -> None:
    model = PowerQueue(3.0)
    assert model.share_ahead(2, 1) == 8 / 9
    assert model.share_ahead(0, 5) == 0.0
    # 1000 cancelled with 100 ahead, 100 behind: 500 each side, but only 100 can come from
    # behind, so the other 400 came from ahead too.
    assert model.on_level_change(100, 200, 0, 0) == 0
    # a decrease fully explained by trades leaves the queue alone (trades moved it already)
    assert model.on_level_change(50, 200, 150, 50) == 50
    assert ConservativeQueue().on_level_change(500, 900, 300, 0) == 300
    assert trade_fill(ahead=300, volume=500, consumed=0, remaining=1000) == (0, 200)
    assert trade_fill(ahead=300, volume=500, consumed=150, remaining=1000) == (0, 50)


def test_two_of_our_orders_at_one_price_share_a_trade_in_arrival_order() -> None:
    h = Harness()
    _book(h)
    a = h.limit(PERP, Side.BUY, "1", "99.9")
    b = h.limit(PERP, Side.BUY, "1", "99.9")
    h.trade(PERP, "99.9", "3.5", Side.SELL)  # 2 ahead, then 1 to a, then 0.5 to b
    assert h.fills_of(a)[0].quantity == Decimal("1.000")
    assert h.fills_of(b)[0].quantity == Decimal("0.500")


def test_trade_through_the_price_fills_the_whole_order() -> None:
    h = Harness()
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.trade(PERP, "99.8", "0.1", Side.SELL)  # the level at 99.9 was swept
    (fill,) = h.fills
    assert fill.quantity == Decimal("1.000") and fill.price == Decimal("99.9")
    assert fill.model == "trade_through/conservative" and h.status(oid) is OrderStatus.FILLED


def test_an_opposite_side_crossing_a_resting_order_fills_it_by_the_size_shown() -> None:
    h = Harness()
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.levels(PERP, bids=[("99.9", "0")], asks=[("99.8", "0.3")])
    (fill,) = h.fills
    assert fill.quantity == Decimal("0.300") and fill.price == Decimal("99.9")
    assert fill.model == "cross/conservative" and fill.liquidity is Liquidity.MAKER
    assert h.status(oid) is OrderStatus.PARTIALLY_FILLED
    h.levels(PERP, asks=[("99.7", "0.1")])  # 99.8 still taken; only the new 0.1 fills
    assert h.fills[-1].quantity == Decimal("0.100")


def test_a_fill_deep_in_the_queue_is_flagged() -> None:
    h = Harness()
    _book(h)
    h.limit(PERP, Side.BUY, "0.15", "99.9")  # 2.0 ahead = 13 times its size
    h.trade(PERP, "99.9", "2.2", Side.SELL)
    assert h.fills[-1].flags == ("deep_queue",)


def test_cancel_travels_the_latency_and_a_fill_can_beat_it() -> None:
    h = Harness(latency=latency(50, 20))
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.advance(70)
    assert h.status(oid) is OrderStatus.ACCEPTED
    h.engine.on_cancel(_cancel(oid, h))
    h.advance(10)
    h.trade(PERP, "99.8", "1", Side.SELL)  # fills it before the cancel arrives
    h.advance(100)
    assert h.status(oid) is OrderStatus.FILLED
    other = h.limit(PERP, Side.BUY, "1", "99.9")
    h.advance(70)
    h.engine.on_cancel(_cancel(other, h))
    h.advance(69)
    assert h.status(other) is OrderStatus.ACCEPTED
    h.advance(1)
    assert h.status(other) is OrderStatus.CANCELED and h.reason(other) == "canceled"


def test_amend_down_keeps_the_queue_and_a_new_price_loses_it() -> None:
    h = Harness()
    _book(h)
    oid = h.limit(PERP, Side.BUY, "1", "99.9")
    h.trade(PERP, "99.9", "1.5", Side.SELL)
    h.engine.on_amend(_amend(oid, h, "0.5", None))
    order = h.venue.orders[oid]
    assert order.ahead == 500 and order.qty == 500
    assert h.engine.orders[oid].order.spec.quantity == Decimal("0.5")
    h.engine.on_amend(_amend(oid, h, None, "99.8"))
    assert order.limit == 998 and order.ahead == 5000  # back of the 99.8 queue
    h.engine.on_amend(_amend(oid, h, None, "99.85"))  # off tick: refused, order unchanged
    assert order.limit == 998


def _cancel(order_id: str, h: Harness):  # type: ignore[no-untyped-def]
    from tradebot.events import CancelOrder

    now = h.clock.now_ns()
    return CancelOrder(order_id=order_id, strategy="t", ts_event=now, ts_init=now)


def _amend(order_id: str, h: Harness, qty: str | None, price: str | None):  # type: ignore[no-untyped-def]
    from tradebot.events import AmendOrder

    now = h.clock.now_ns()
    return AmendOrder(order_id=order_id, strategy="t",
                      quantity=Decimal(qty) if qty else None,
                      limit_price=Decimal(price) if price else None, ts_event=now, ts_init=now)
