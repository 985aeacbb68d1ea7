"""State after a restart, clean or not: one path rebuilds it from the store.

The portfolio folds the stored fills and funding payments through the same code as live
ones; order ids continue after the stored orders; the orders open at the last stop go back to
the venue (their queue position is taken again from the next book).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog
from sqlalchemy import Engine

from tradebot.execution.engine import ExecutionEngine
from tradebot.portfolio.portfolio import Portfolio
from tradebot.store import db

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recovered:
    """What the store held: fills folded into the portfolio, and orders (for id numbering)."""

    fills: int
    orders: int


def recover_portfolio(engine: Engine, portfolio: Portfolio, starting_cash: Decimal,
                      now_ns: int) -> Recovered:
    """Migrate the store, then fold its fills and funding into `portfolio`."""
    db.migrate(engine)
    portfolio.set_starting_cash(db.load_starting_cash(engine, portfolio.currency,
                                                      starting_cash, now_ns))
    fills = db.load_fills(engine)
    for fill in fills:
        portfolio.on_fill(fill)
    for payment in db.load_funding(engine):
        portfolio.on_funding(payment)
    log.info("portfolio_rebuilt", fills=len(fills), cash=str(portfolio.cash()),
             equity=str(portfolio.equity()))
    return Recovered(fills=len(fills), orders=db.count_orders(engine))


def restore_open_orders(engine: Engine, execution: ExecutionEngine) -> int:
    """Hand the orders open at the last stop back to the execution engine; return how many."""
    states = db.load_open_orders(engine)
    for state in states:
        execution.restore(state)
    return len(states)
