"""Hand-computed scenarios: latency, the book at arrival, walking levels, taken liquidity."""

from __future__ import annotations

from decimal import Decimal

from tests.unit.execution.harness import MS, PERP, START_NS, Harness, latency
from tradebot.domain import Liquidity, OrderStatus, OrderType, Side
from tradebot.events import TimeInForce


def test_market_order_walks_the_book_it_meets_at_arrival_and_reports_after_the_response() -> None:
    h = Harness(latency=latency(50, 20))
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1"), ("100.1", "2"), ("100.2", "5")])
    oid = h.submit(PERP, Side.BUY, "2.5", OrderType.MARKET)
    h.advance(10)
    h.levels(PERP, asks=[("100.0", "0.5")])  # the book changes while the order travels
    h.advance(55)  # arrived at 50 ms, response due at 70 ms
    assert h.status(oid) is OrderStatus.SUBMITTED and not h.fills
    h.advance(15)
    assert h.status(oid) is OrderStatus.FILLED
    (fill,) = h.fills
    assert fill.levels == ((Decimal("100.0"), Decimal("0.500")),
                           (Decimal("100.1"), Decimal("2.000")))
    assert fill.price == Decimal("100.08")  # (0.5 * 100.0 + 2 * 100.1) / 2.5
    assert fill.fee == Decimal("0.1251")  # 250.2 * 0.0005
    assert fill.liquidity is Liquidity.TAKER and fill.model == "taker_walk"
    assert fill.arrival_mid == Decimal("99.95")
    assert abs(fill.slippage_bps - 13.00650325) < 1e-6  # (100.08 - 99.95) / 99.95
    assert fill.entry_latency_ns == 50 * MS and fill.response_latency_ns == 20 * MS
    assert fill.ts_event == START_NS + 50 * MS  # matched at arrival
    assert fill.ts_init == START_NS + 70 * MS  # known after the response latency
    assert fill.queue_ahead_entry is None


def test_taken_liquidity_stays_taken_until_the_venue_updates_the_level() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1"), ("100.1", "1"), ("100.2", "1")])
    first = h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    second = h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    assert h.fills_of(first)[0].price == Decimal("100.0")
    assert h.fills_of(second)[0].price == Decimal("100.1")  # 100.0 still shown, but taken
    h.levels(PERP, asks=[("100.0", "1.5")])  # the venue updates 100.0: our take is forgotten
    third = h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    assert h.fills_of(third)[0].price == Decimal("100.0")


def test_market_order_larger_than_the_book_fills_partly_and_cancels_the_rest() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1")])
    oid = h.submit(PERP, Side.BUY, "3", OrderType.MARKET)
    assert [f.quantity for f in h.fills_of(oid)] == [Decimal("1.000")]
    assert h.status(oid) is OrderStatus.CANCELED
    assert h.reason(oid) == "insufficient_liquidity"


def test_ioc_takes_what_its_limit_allows_and_cancels_the_rest() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1"), ("100.1", "1"), ("100.2", "1")])
    oid = h.limit(PERP, Side.BUY, "3", "100.1", tif=TimeInForce.IOC)
    (fill,) = h.fills_of(oid)
    assert fill.quantity == Decimal("2.000") and fill.price == Decimal("100.05")
    assert h.status(oid) is OrderStatus.CANCELED and h.reason(oid) == "ioc_remainder"


def test_fok_that_cannot_fill_completely_fills_nothing() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1"), ("100.1", "1")])
    oid = h.limit(PERP, Side.BUY, "3", "100.1", tif=TimeInForce.FOK)
    assert not h.fills_of(oid)
    assert h.status(oid) is OrderStatus.CANCELED and h.reason(oid) == "fok_not_filled"
    ok = h.limit(PERP, Side.BUY, "2", "100.1", tif=TimeInForce.FOK)
    assert h.status(ok) is OrderStatus.FILLED


def test_marketable_gtc_limit_takes_then_rests_the_rest_at_its_price() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1")])
    oid = h.limit(PERP, Side.BUY, "3", "100.0")
    assert h.fills_of(oid)[0].quantity == Decimal("1.000")
    assert h.status(oid) is OrderStatus.PARTIALLY_FILLED
    resting = h.venue.orders[oid]
    assert resting.remaining == 2000 and resting.ahead == 0  # no bids shown at 100.0


def test_post_only_that_would_cross_is_rejected() -> None:
    h = Harness()
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1")])
    oid = h.limit(PERP, Side.BUY, "1", "100.0", post_only=True)
    assert h.status(oid) is OrderStatus.REJECTED
    assert h.reason(oid).startswith("post_only_would_cross")
    ok = h.limit(PERP, Side.BUY, "1", "99.9", post_only=True)
    assert h.status(ok) is OrderStatus.ACCEPTED


def test_an_invalid_book_at_arrival_rejects_the_order() -> None:
    h = Harness(latency=latency(10, 0))
    h.levels(PERP, bids=[("99.9", "1")], asks=[("100.0", "1")])
    oid = h.submit(PERP, Side.BUY, "1", OrderType.MARKET)
    h.books[PERP.id].valid = False
    h.advance(10)
    assert h.status(oid) is OrderStatus.REJECTED and h.reason(oid) == "book_invalid"
