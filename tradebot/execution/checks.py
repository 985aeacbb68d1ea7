"""Venue rules a simulated order must pass, each failure a short code and the numbers."""

from __future__ import annotations

from decimal import Decimal

from tradebot.domain import Instrument, MarketKind, OrderType
from tradebot.execution.account import VenueAccount
from tradebot.order import OrderSpec

ZERO = Decimal(0)


def static_reason(order: OrderSpec, inst: Instrument, touch: Decimal | None) -> str | None:
    """Check tick size, lot size and min notional; return why the order breaks them."""
    qty = order.quantity
    if qty <= 0 or qty % inst.lot_size != 0:
        return f"lot_size: quantity {qty} is not a positive multiple of {inst.lot_size}"
    for name, price in (("limit", order.limit_price), ("trigger", order.trigger_price)):
        if price is not None and (price <= 0 or price % inst.tick_size != 0):
            return f"tick_size: {name} price {price} is not a positive multiple of {inst.tick_size}"
    if order.order_type is OrderType.LIMIT and order.limit_price is None:
        return "invalid: a limit order needs a limit price"
    if order.trigger is not None and order.trigger_price is None:
        return "invalid: a conditional order needs a trigger price"
    if order.post_only and order.order_type is not OrderType.LIMIT:
        return "invalid: post-only needs a limit order"
    price = order.limit_price or order.trigger_price or touch
    if price is not None and not order.reduce_only:
        notional = inst.notional(qty, price)
        if notional < inst.min_notional:
            return f"min_notional: notional {notional} is below {inst.min_notional}"
    return None


def reduce_only_reason(order: OrderSpec, position: Decimal) -> str | None:
    """Check that a reduce-only order only reduces the position it meets."""
    if not order.reduce_only:
        return None
    signed = order.quantity * order.side
    if position == 0 or (position > 0) == (signed > 0):
        return f"reduce_only: order {signed:+} would not reduce position {position}"
    return None


def funds_reason(order: OrderSpec, inst: Instrument, account: VenueAccount, price: Decimal,
                 remaining: Decimal, reserved_cash: Decimal, reserved_qty: Decimal,
                 open_margin: Decimal, fee_rate: Decimal) -> str | None:
    """Check spot balance or perpetual margin for `remaining` at about `price`."""
    if inst.kind is MarketKind.SPOT:
        if order.side < 0:
            free = account.position(inst.id) - reserved_qty
            if remaining > free:
                return f"insufficient_balance: sell {remaining} {inst.base}, free {free}"
            return None
        cost = inst.notional(remaining, price) * (1 + fee_rate)
        free_cash = account.spot_cash_free(reserved_cash)
        if cost > free_cash:
            return f"insufficient_balance: buy costs {cost} {inst.quote}, free {free_cash}"
        return None
    if order.reduce_only:
        return None
    needed = account.initial_margin(inst.id, remaining * inst.contract_size, price)
    free = account.margin_free(open_margin)
    if needed > free:
        return f"insufficient_margin: needs {needed}, free {free}"
    return None
