"""The execution port: what any venue adapter, paper or live, implements and reports to."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

import numpy as np

from tradebot.domain import InstrumentId, Liquidity, OrderType, Side


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the execution client sees it."""

    order_id: str
    strategy: str
    instrument: InstrumentId
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    reduce_only: bool
    ts_submitted: int


class ExecutionReports(Protocol):
    """How an execution client reports back to the order engine."""

    def accepted(self, order_id: str, ts_event: int) -> None:
        """The venue accepted the order."""

    def rejected(self, order_id: str, reason: str, ts_event: int) -> None:
        """The venue rejected the order."""

    def canceled(self, order_id: str, reason: str, ts_event: int) -> None:
        """The rest of the order was cancelled."""

    def filled(self, order_id: str, *, quantity: Decimal, price: Decimal, fee: Decimal,
               fee_currency: str, liquidity: Liquidity,
               levels: tuple[tuple[Decimal, Decimal], ...], slippage_bps: float,
               ts_event: int) -> None:
        """Part or all of the order executed."""


class ExecutionClient(Protocol):
    """A venue adapter."""

    def submit(self, order: Order) -> None:
        """Send an order; the outcome comes back through ExecutionReports."""

    def cancel(self, order_id: str) -> None:
        """Cancel an open order."""


class BookLike(Protocol):
    """The read-only book queries a simulated venue needs."""

    def walk(self, taker_side: int, quantity_units: int, limit_units: int = 0) -> np.ndarray:
        """Return (price units, size units) a taker would take, best level first."""

    def mid_price(self) -> Decimal | None:
        """Return the exact mid price."""


class BookSource(Protocol):
    """A book and whether it may be used (only a synced book may fill an order)."""

    @property
    def valid(self) -> bool:
        """Return True while the book is synced."""

    @property
    def book(self) -> BookLike:
        """Return the book."""
