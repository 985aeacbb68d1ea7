"""Small pre-trade rules. Each returns None to pass or a reason string to deny."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tradebot.domain import Instrument, MarketKind, OrderType, Side, TradingState
from tradebot.order import OrderSpec


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the rules see about one intent."""

    spec: OrderSpec
    instrument: Instrument
    price: Decimal | None  # the price the order would meet: best ask to buy, best bid to sell
    book_valid: bool
    book_age_s: float
    position: Decimal
    cash: Decimal
    taker_fee: Decimal
    state: TradingState


class Rule(Protocol):
    """A named pre-trade check."""

    name: str

    def check(self, ctx: CheckContext) -> str | None:
        """Return None to pass, or why the intent is denied."""


def _order_price(ctx: CheckContext) -> Decimal | None:
    """Return the price an order's notional is judged at: its limit, else trigger, else touch."""
    spec = ctx.spec
    if spec.order_type is OrderType.LIMIT and spec.limit_price is not None:
        return spec.limit_price
    return spec.trigger_price or ctx.price


def _increases(ctx: CheckContext) -> bool:
    signed = ctx.spec.quantity * ctx.spec.side
    return abs(ctx.position + signed) > abs(ctx.position)


class TradingStateRule:
    name = "trading_state"

    def check(self, ctx: CheckContext) -> str | None:
        if ctx.state is TradingState.HALTED:
            return "trading is halted"
        if ctx.state is TradingState.REDUCING and _increases(ctx):
            return "trading is reducing-only and this order increases exposure"
        return None


class SupportedRule:
    name = "unsupported"

    def __init__(self, account_currency: str) -> None:
        self.currency = account_currency

    def check(self, ctx: CheckContext) -> str | None:
        inst = ctx.instrument
        if inst.kind is MarketKind.INVERSE_PERP:
            return "inverse contracts are not supported by the paper venue yet"
        if inst.quote != self.currency:
            # The paper account holds one currency: a fill quoted in another could not be
            # paid for or valued (YFI-BTC against a USDT account).
            return (f"{inst.id} is quoted in {inst.quote}, not the account currency "
                    f"{self.currency} (paper.account_currency)")
        spec = ctx.spec
        if spec.order_type is OrderType.LIMIT and spec.limit_price is None:
            return "a limit order needs a limit price"
        if spec.trigger is not None and spec.trigger_price is None:
            return "a conditional order needs a trigger price"
        return None


class BookRule:
    name = "book"

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s

    def check(self, ctx: CheckContext) -> str | None:
        if not ctx.book_valid or ctx.price is None:
            return "no valid book for the instrument"
        if self.max_age_s > 0 and ctx.book_age_s > self.max_age_s:
            return f"book is {ctx.book_age_s:.1f}s old (max {self.max_age_s}s)"
        return None


class LotSizeRule:
    name = "lot_size"

    def check(self, ctx: CheckContext) -> str | None:
        qty, lot = ctx.spec.quantity, ctx.instrument.lot_size
        if qty <= 0:
            return f"quantity {qty} is not positive"
        if qty % lot != 0:
            return f"quantity {qty} is not a multiple of lot size {lot}"
        return None


class MinNotionalRule:
    name = "min_notional"

    def check(self, ctx: CheckContext) -> str | None:
        price = _order_price(ctx)
        if price is None:
            return "no price to check against"
        notional = ctx.instrument.notional(ctx.spec.quantity, price)
        if notional < ctx.instrument.min_notional and not ctx.spec.reduce_only:
            return f"notional {notional:.8f} below venue minimum {ctx.instrument.min_notional}"
        return None


class MaxOrderNotionalRule:
    name = "max_order_notional"

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit

    def check(self, ctx: CheckContext) -> str | None:
        price = _order_price(ctx)
        if price is None:
            return "no price to check against"
        notional = ctx.instrument.notional(ctx.spec.quantity, price)
        if notional > self.limit and _increases(ctx):
            return f"order notional {notional:.2f} above max_order_notional {self.limit}"
        return None


class MaxPositionRule:
    name = "max_position"

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit

    def check(self, ctx: CheckContext) -> str | None:
        price = _order_price(ctx)
        if price is None:
            return "no price to check against"
        after = ctx.position + ctx.spec.quantity * ctx.spec.side
        notional = ctx.instrument.notional(abs(after), price)
        if notional > self.limit and _increases(ctx):
            return f"position would be {notional:.2f} notional, above {self.limit}"
        if ctx.spec.reduce_only and _increases(ctx):
            return "reduce-only order would increase the position"
        return None


class SpotBalanceRule:
    name = "balance"

    def check(self, ctx: CheckContext) -> str | None:
        if ctx.instrument.kind is not MarketKind.SPOT:
            return None
        if ctx.price is None:
            return "no price to check against"
        if ctx.spec.side is Side.SELL and ctx.spec.quantity > ctx.position:
            return f"sell {ctx.spec.quantity} exceeds holding {ctx.position} (spot, no short)"
        cost = ctx.spec.quantity * (_order_price(ctx) or ctx.price) * (1 + ctx.taker_fee)
        if ctx.spec.side is Side.BUY and cost > ctx.cash:
            return f"buy costs about {cost:.2f} with fees, cash is {ctx.cash:.2f}"
        return None
