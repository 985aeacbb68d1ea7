"""The JSON the HTTP API serves, shaped from the components' state."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from tradebot.execution.engine import OrderState

# /api/orders shows the latest orders, open or closed.
RECENT_ORDERS = 100


def orders_json(orders: Iterable[OrderState], limit: int = RECENT_ORDERS) -> list[dict[str, Any]]:
    """Return the last `limit` orders as `/api/orders` serves them."""
    return [
        {"order_id": s.order.order_id, "instrument": str(s.order.instrument),
         "side": s.order.side.name, "type": s.order.order_type.value,
         "quantity": str(s.order.quantity),
         "limit_price": _text(s.order.limit_price),
         "trigger": s.order.trigger.value if s.order.trigger is not None else None,
         "trigger_price": _text(s.order.trigger_price), "triggered": s.ts_triggered > 0,
         "status": s.status.value, "filled": str(s.filled), "reason": s.reason}
        for s in list(orders)[-limit:]
    ]


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
