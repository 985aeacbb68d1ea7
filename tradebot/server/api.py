"""The JSON the HTTP API serves, shaped from the components' state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tradebot.order import OrderState, order_json

# /api/orders shows the latest orders, open or closed.
RECENT_ORDERS = 100


def orders_json(orders: Iterable[OrderState], limit: int = RECENT_ORDERS) -> list[dict[str, Any]]:
    """Return the last `limit` orders as `/api/orders` serves them."""
    return [order_json(s) for s in list(orders)[-limit:]]
