"""A simple two-sided quoting strategy that exercises the paper venue on any recording.

It keeps one post-only limit order on each side, joining the best bid and the best ask (or
`offset_ticks` behind them). A quote more than `requote_ticks` away from where it would be
placed now is cancelled and placed again, at most once per `min_requote_s` per side. A side is
not quoted while the position it would add to is at `max_position_notional`; on spot it sells
only what it holds. It is a test strategy, not a profitable one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradebot.config import build_section, opt
from tradebot.domain import InstrumentId, MarketKind, OrderStatus, OrderType, Side
from tradebot.events import (
    BookUpdated,
    OrderDenied,
    OrderUpdated,
)
from tradebot.order import IdGenerator
from tradebot.strategies.base import Strategy


@dataclass(frozen=True, slots=True)
class QuotingParams:
    order_notional: Decimal = opt(Decimal(200), min=Decimal(0), exclusive_min=True)
    offset_ticks: int = opt(0, min=0)
    requote_ticks: int = opt(2, min=1)
    min_requote_s: float = opt(1.0, min=0.0)
    max_position_notional: Decimal = opt(Decimal(400), min=Decimal(0))

    @classmethod
    def parse(cls, params: Mapping[str, Any], where: str) -> QuotingParams:
        """Validate strategy params; ConfigError names the bad key."""
        return build_section(cls, params, where)


@dataclass(slots=True)
class _Slot:
    order_id: str | None = None  # None while the intent has no order yet
    price: Decimal = Decimal(0)
    canceling: bool = False


class Quoting(Strategy):
    """Join both sides of the book with post-only limit orders and keep them near the touch."""

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        super().__init__(name, params)
        self.p = QuotingParams.parse(params, f"strategies.{name}.params")
        self._slots: dict[tuple[InstrumentId, Side], _Slot] = {}
        self._next_requote: dict[tuple[InstrumentId, Side], int] = {}
        self._ids = IdGenerator(name, tag="q")
        self.quotes = 0
        self.cancels = 0

    def on_book(self, event: BookUpdated) -> None:
        """Place missing quotes and move the ones the touch has left behind."""
        if event.best_bid <= 0 or event.best_ask <= 0:
            return
        inst = self.ctx.instruments[event.instrument]
        offset = inst.tick_size * self.p.offset_ticks
        bid = Decimal(repr(event.best_bid)) - offset
        ask = Decimal(repr(event.best_ask)) + offset
        for side, price in ((Side.BUY, bid), (Side.SELL, ask)):
            self._quote(event.instrument, side, price)

    def _quote(self, iid: InstrumentId, side: Side, price: Decimal) -> None:
        key = (iid, side)
        slot = self._slots.get(key)
        now = self.ctx.clock.now_ns()
        inst = self.ctx.instruments[iid]
        if slot is None:
            qty = self._size(iid, side, price)
            if qty > 0 and now >= self._next_requote.get(key, 0):
                # The slot exists before the intent goes out: dispatch is synchronous, so the
                # order's SUBMITTED update arrives while `_send` is still running.
                self._slots[key] = _Slot(price=price)
                self.quotes += 1
                self.ctx.submit(iid, side, qty, order_type=OrderType.LIMIT, limit_price=price,
                                post_only=True,
                                intent_id=self._ids.next(now))
            return
        away = abs(slot.price - price) > inst.tick_size * self.p.requote_ticks
        if slot.order_id is not None and away and not slot.canceling and \
                now >= self._next_requote.get(key, 0):
            slot.canceling = True
            self.cancels += 1
            self._next_requote[key] = now + int(self.p.min_requote_s * 1e9)
            self.ctx.cancel(slot.order_id)

    def _size(self, iid: InstrumentId, side: Side, price: Decimal) -> Decimal:
        inst = self.ctx.instruments[iid]
        qty = inst.round_size_down(self.p.order_notional / (price * inst.contract_size))
        if qty < inst.lot_size:
            return Decimal(0)
        position = self.ctx.portfolio.position(iid)
        if inst.kind is MarketKind.SPOT and side is Side.SELL:
            return qty if position >= qty else Decimal(0)
        after = position + qty * side
        if abs(after) > abs(position) and \
                inst.notional(abs(after), price) > self.p.max_position_notional:
            return Decimal(0)
        return qty

    def on_order(self, event: OrderUpdated) -> None:
        """Learn the order id of a new quote; free the side when a quote is done."""
        state = event.state
        order = state.order
        key = (order.spec.instrument, order.spec.side)
        slot = self._slots.get(key)
        if slot is None:
            return
        if state.status is OrderStatus.SUBMITTED and slot.order_id is None:
            slot.order_id = order.order_id
        elif state.status.is_terminal and slot.order_id == order.order_id:
            del self._slots[key]

    def on_denied(self, event: OrderDenied) -> None:
        """Free the side after a denial and wait before quoting it again."""
        key = (event.intent.spec.instrument, event.intent.spec.side)
        slot = self._slots.get(key)
        if slot is not None and slot.order_id is None:
            del self._slots[key]
            self._next_requote[key] = self.ctx.clock.now_ns() + int(self.p.min_requote_s * 1e9)
