"""The simulated venue: market orders walk the live L2 book and pay the taker fee.

This is the foundation's model: immediate arrival (no latency yet), every level taken at its
own price, the rest of an order the book cannot fill is cancelled (`insufficient_liquidity`).
Only a synced book can fill an order; an order meeting an invalid book is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tradebot.clock import Clock
from tradebot.config import PaperConfig
from tradebot.domain import Instrument, InstrumentId, Liquidity, OrderType
from tradebot.execution.base import BookSource, ExecutionReports, Order


class PaperVenue:
    """An ExecutionClient that simulates the venue against the local books."""

    def __init__(self, reports: ExecutionReports, clock: Clock,
                 books: Mapping[InstrumentId, BookSource],
                 instruments: Mapping[InstrumentId, Instrument], config: PaperConfig) -> None:
        self._reports = reports
        self._clock = clock
        self._books = books
        self._instruments = instruments
        self._config = config

    def submit(self, order: Order) -> None:
        """Accept and execute an order, or reject it with a reason."""
        now = self._clock.now_ns()
        source = self._books.get(order.instrument)
        inst = self._instruments.get(order.instrument)
        if source is None or inst is None:
            self._reports.rejected(order.order_id, "unknown_instrument", now)
            return
        if order.order_type is not OrderType.MARKET:
            self._reports.rejected(order.order_id, "unsupported_order_type", now)
            return
        if not source.valid:
            self._reports.rejected(order.order_id, "book_invalid", now)
            return
        try:
            qty_units = inst.size_to_units(order.quantity)
        except ValueError:
            self._reports.rejected(order.order_id, "lot_size", now)
            return
        self._reports.accepted(order.order_id, now)
        self._take(order, inst, source, qty_units, now)

    def _take(self, order: Order, inst: Instrument, source: BookSource, qty_units: int,
              now: int) -> None:
        book = source.book
        mid = book.mid_price()
        taken = book.walk(int(order.side), qty_units)
        levels = tuple((inst.price_from_units(int(p)), inst.size_from_units(int(s)))
                       for p, s in taken)
        quantity = sum((s for _, s in levels), Decimal(0))
        if quantity > 0:
            notional = sum((p * s for p, s in levels), Decimal(0))
            price = notional / quantity
            rates = self._config.fees.get(inst.id.venue)
            rate = rates.taker if rates is not None else Decimal(0)
            fee = notional * inst.contract_size * rate
            slippage = float((price - mid) / mid * 10_000 * order.side) if mid else 0.0
            self._reports.filled(order.order_id, quantity=quantity, price=price, fee=fee,
                                 fee_currency=inst.quote, liquidity=Liquidity.TAKER,
                                 levels=levels, slippage_bps=slippage, ts_event=now)
        if quantity < order.quantity:
            self._reports.canceled(order.order_id, "insufficient_liquidity", now)

    def cancel(self, order_id: str) -> None:
        """Market orders never rest, so there is nothing to cancel in this model."""
