"""The execution port: what any venue adapter, paper or live, implements and reports to."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tradebot.domain import Liquidity
from tradebot.order import Order as Order  # the port's order: re-exported for venue adapters


@dataclass(frozen=True, slots=True)
class FillInfo:
    """Why a simulated fill happened (copied onto the Fill event, stored, served by the API)."""

    model: str
    queue_ahead_entry: Decimal | None
    queue_ahead_fill: Decimal | None
    entry_latency_ns: int
    response_latency_ns: int
    arrival_mid: Decimal | None
    flags: tuple[str, ...]


class ExecutionReports(Protocol):
    """How an execution client reports back to the order engine."""

    def accepted(self, order_id: str, ts_event: int) -> None:
        """The venue accepted the order."""

    def rejected(self, order_id: str, reason: str, ts_event: int) -> None:
        """The venue rejected the order."""

    def canceled(self, order_id: str, reason: str, ts_event: int) -> None:
        """The rest of the order was cancelled."""

    def triggered(self, order_id: str, ts_event: int) -> None:
        """A conditional order's trigger traded; it now executes as a market or limit order."""

    def amended(self, order_id: str, quantity: Decimal, limit_price: Decimal | None,
                ts_event: int) -> None:
        """The venue changed the order's quantity and/or limit price."""

    def request_failed(self, order_id: str, request: str, reason: str, ts_event: int) -> None:
        """A cancel or amend was refused (the order is unknown, closed or the change illegal)."""

    def filled(self, order_id: str, *, quantity: Decimal, price: Decimal, fee: Decimal,
               fee_currency: str, liquidity: Liquidity,
               levels: tuple[tuple[Decimal, Decimal], ...], slippage_bps: float,
               ts_event: int, info: FillInfo | None = None) -> None:
        """Part or all of the order executed."""


class ExecutionClient(Protocol):
    """A venue adapter."""

    def submit(self, order: Order) -> None:
        """Send an order; the outcome comes back through ExecutionReports."""

    def cancel(self, order_id: str) -> None:
        """Cancel an open order."""

    def amend(self, order_id: str, quantity: Decimal | None, limit_price: Decimal | None) -> None:
        """Change an open order's quantity and/or limit price."""

    def restore(self, order: Order, filled: Decimal, triggered: bool) -> None:
        """Take back an order that was open when the process stopped."""
