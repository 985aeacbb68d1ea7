"""The order record, declared once and carried from intent to store.

`OrderSpec` is what to trade; the intent (events.OrderIntent) carries it to risk, the
execution engine wraps the same object in an `Order` once risk gave it an id, and every state
change of that order is an `OrderState`, which the OrderUpdated event, the store's order row,
the restart and the HTTP API all read. `IdGenerator` makes every intent and order id.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from tradebot.domain import InstrumentId, OrderStatus, OrderType, Side, TimeInForce, TriggerType


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSpec:
    """What to trade and how, as a strategy (or the system itself) asked for it.

    `internal` marks an order the system places on its own account's behalf (liquidation,
    later flatten and stop-loss): risk passes it past the pre-trade rules and the paper venue
    sends it without latency or balance checks. Strategies cannot set it.
    """

    strategy: str
    instrument: InstrumentId
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    reduce_only: bool = False
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    # With a trigger, the order waits at the venue until the last trade price reaches
    # `trigger_price`, then acts as `order_type` (market: stop-market / take-profit).
    trigger: TriggerType | None = None
    trigger_price: Decimal | None = None
    internal: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    """An order risk approved: its id, what it trades and when it was submitted (ns)."""

    order_id: str
    spec: OrderSpec
    ts_created: int

    def amended(self, quantity: Decimal | None, limit_price: Decimal | None) -> Order:
        """Return the order with a new quantity and/or limit price (None keeps the old one)."""
        spec = self.spec
        return replace(self, spec=replace(
            spec, quantity=spec.quantity if quantity is None else quantity,
            limit_price=spec.limit_price if limit_price is None else limit_price))


@dataclass(frozen=True, slots=True)
class OrderState:
    """One order at one point of its life: the execution engine's record of it.

    The store's order row, the orders open at a restart and the API's JSON are read from it.
    """

    order: Order
    status: OrderStatus
    filled: Decimal
    notional: Decimal
    reason: str = ""
    fills: int = 0
    ts_triggered: int = 0  # when a conditional order's trigger traded; 0: not (yet)

    @property
    def average_price(self) -> Decimal | None:
        """Return the average fill price, None before the first fill."""
        return self.notional / self.filled if self.filled else None


def order_json(state: OrderState) -> dict[str, Any]:
    """Return an order's state as the HTTP API serves it."""
    order = state.order
    spec = order.spec
    return {
        "order_id": order.order_id, "instrument": str(spec.instrument),
        "side": spec.side.name, "type": spec.order_type.value, "quantity": str(spec.quantity),
        "limit_price": _text(spec.limit_price),
        "trigger": spec.trigger.value if spec.trigger is not None else None,
        "trigger_price": _text(spec.trigger_price), "triggered": state.ts_triggered > 0,
        "status": state.status.value, "filled": str(state.filled), "reason": state.reason,
    }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class IdGenerator:
    """Make ids `{prefix}-{time as hex}-{tag}{n}`, n counting from 1.

    The time alone does not make an id unique (several orders in one nanosecond of simulated
    time), the counter alone not across runs: a replay into a database that already holds a
    replay of the same recording would repeat the first run's ids, hence `continue_after`.
    """

    __slots__ = ("_counter", "_tag", "prefix")

    def __init__(self, prefix: str, tag: str = "") -> None:
        self.prefix = prefix
        self._tag = tag
        self._counter = itertools.count(1)

    def next(self, now_ns: int, prefix: str | None = None) -> str:
        """Return a new id at `now_ns`, under `prefix` instead of this generator's if given."""
        return f"{prefix or self.prefix}-{now_ns:x}-{self._tag}{next(self._counter)}"

    def continue_after(self, stored: int) -> None:
        """Count on from `stored` (the orders the store already holds)."""
        self._counter = itertools.count(stored + 1)
