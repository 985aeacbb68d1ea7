"""The order record: one spec carried from intent to store, one id generator."""

from __future__ import annotations

from decimal import Decimal

from tradebot.domain import InstrumentId, OrderStatus, OrderType, Side, TriggerType
from tradebot.order import IdGenerator, Order, OrderSpec, OrderState, order_json

BTC = InstrumentId("BTC-USDT", "binance")
SPEC = OrderSpec(strategy="s", instrument=BTC, side=Side.BUY, quantity=Decimal("0.002"),
                 order_type=OrderType.LIMIT, limit_price=Decimal("60000.5"))


def test_ids_are_prefix_time_in_hex_and_a_counter_that_continues_after_the_store() -> None:
    ids = IdGenerator("O")
    assert [ids.next(255), ids.next(256)] == ["O-ff-1", "O-100-2"]
    ids.continue_after(41)
    assert ids.next(255) == "O-ff-42"
    tagged = IdGenerator("quote", tag="q")
    assert tagged.next(16) == "quote-10-q1"
    assert tagged.next(16, prefix="other") == "other-10-q2"  # one counter for both prefixes


def test_an_amend_changes_only_what_it_names() -> None:
    order = Order("O-1", SPEC, 7)
    assert order.amended(Decimal("0.001"), None).spec == OrderSpec(
        strategy="s", instrument=BTC, side=Side.BUY, quantity=Decimal("0.001"),
        order_type=OrderType.LIMIT, limit_price=Decimal("60000.5"))
    moved = order.amended(None, Decimal(60001))
    assert moved.spec.quantity == SPEC.quantity and moved.spec.limit_price == Decimal(60001)
    assert moved.order_id == "O-1" and moved.ts_created == 7 and order.spec is SPEC


def test_the_api_shows_an_order_state_with_decimals_as_text() -> None:
    spec = OrderSpec(strategy="s", instrument=BTC, side=Side.SELL, quantity=Decimal("0.002"),
                     trigger=TriggerType.STOP, trigger_price=Decimal("59000.1"))
    state = OrderState(Order("O-2", spec, 7), OrderStatus.PARTIALLY_FILLED, Decimal("0.001"),
                       Decimal("59.0001"), reason="triggered", fills=1, ts_triggered=9)
    assert order_json(state) == {
        "order_id": "O-2", "instrument": "BTC-USDT.binance", "side": "SELL", "type": "market",
        "quantity": "0.002", "limit_price": None, "trigger": "stop",
        "trigger_price": "59000.1", "triggered": True, "status": "partially_filled",
        "filled": "0.001", "reason": "triggered",
    }
    assert state.average_price == Decimal("59000.1")
