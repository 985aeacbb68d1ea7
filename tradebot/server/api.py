"""The JSON the HTTP API serves, shaped from the components' state."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy import Engine

from tradebot.execution.engine import ExecutionEngine
from tradebot.features import FeatureEngine
from tradebot.health import Health
from tradebot.order import OrderState, order_json
from tradebot.portfolio.portfolio import Portfolio
from tradebot.server.http import Readiness, build_app
from tradebot.store import db

# /api/orders shows the latest orders, open or closed.
RECENT_ORDERS = 100


def orders_json(orders: Iterable[OrderState], limit: int = RECENT_ORDERS) -> list[dict[str, Any]]:
    """Return the last `limit` orders as `/api/orders` serves them."""
    return [order_json(s) for s in list(orders)[-limit:]]


def daemon_api(health: Health, portfolio: Portfolio, engine: Engine, execution: ExecutionEngine,
               features: FeatureEngine) -> web.Application:
    """Return the daemon's HTTP app: health, metrics and the JSON API over its components."""
    return build_app(Readiness(health.readiness), portfolio.snapshot,
                     lambda: db.recent_fills(engine),
                     lambda: orders_json(execution.orders.values()),
                     bars=lambda iid, n: db.recent_bars(engine, iid, n),
                     features=features.snapshot)
