"""State after a restart, clean or not: one path rebuilds it from the store.

The portfolio folds the stored fills and funding payments through the same code as live
ones and marks its positions at the last known price until the first book; order ids continue
after the stored orders; the orders open at the last stop go back to the venue (their queue
position is taken again from the next book).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import structlog
from sqlalchemy import Engine

from tradebot.domain import InstrumentId
from tradebot.events import Fill
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
    marks = portfolio.restore_marks(last_marks(db.load_marks(engine), fills))
    log.info("portfolio_rebuilt", fills=len(fills), cash=str(portfolio.cash()),
             equity=str(portfolio.equity()), marks=marks)
    return Recovered(fills=len(fills), orders=db.count_orders(engine))


def last_marks(stored: Mapping[InstrumentId, tuple[Decimal, int]],
               fills: Iterable[Fill]) -> dict[InstrumentId, Decimal]:
    """Return each instrument's latest known price: its stored mark or a later fill's price.

    Marks are stored with each equity point; a position opened after the last one (then a
    crash) has only its fills.
    """
    latest = dict(stored)
    for fill in fills:  # in the order applied: the last one per instrument wins
        known = latest.get(fill.instrument)
        if known is None or fill.ts_event > known[1]:
            latest[fill.instrument] = (fill.price, fill.ts_event)
    return {iid: price for iid, (price, _) in latest.items()}


def restore_open_orders(engine: Engine, execution: ExecutionEngine) -> int:
    """Hand the orders open at the last stop back to the execution engine; return how many."""
    states = db.load_open_orders(engine)
    for state in states:
        execution.restore(state)
    return len(states)
