"""Enums, instrument identity and the venue rules of an instrument."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import NamedTuple, Protocol


class Side(IntEnum):
    """Order or aggressor side; the value is the sign of the position change."""

    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        """Return the other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class MarketKind(StrEnum):
    """How an instrument settles."""

    SPOT = "spot"
    LINEAR_PERP = "linear_perp"
    INVERSE_PERP = "inverse_perp"


class OrderType(StrEnum):
    """Order types the execution port accepts."""

    MARKET = "market"
    LIMIT = "limit"


class OrderStatus(StrEnum):
    """States of the order state machine (execution/engine.py)."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"

    @property
    def is_terminal(self) -> bool:
        """Return True when no further transition is legal."""
        return self in _TERMINAL


_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})


class TimeInForce(StrEnum):
    """How long a limit order may rest: until cancelled, fill-what-you-can, all-or-nothing."""

    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


class TriggerType(StrEnum):
    """A conditional order: a stop fires when the last price moves against the position's
    side (buy at or above, sell at or below), a take-profit when it moves the other way."""

    STOP = "stop"
    TAKE_PROFIT = "take_profit"


class Liquidity(StrEnum):
    """Whether a fill added or removed liquidity."""

    MAKER = "maker"
    TAKER = "taker"


class TradingState(StrEnum):
    """Risk engine state: ACTIVE trades, REDUCING only reduces exposure, HALTED sends nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class InstrumentId(NamedTuple):
    """A normalised symbol (`BTC-USDT`, `BTC-USDT-PERP`) on a venue (`binance`, `binance_usdm`).

    A named tuple rather than a frozen dataclass: it keys the dicts every event goes through,
    and a tuple hashes in C where a dataclass calls a generated Python `__hash__` (200,000
    calls in one replay of the USD-M BTCUSDT recording).
    """

    symbol: str
    venue: str

    def __str__(self) -> str:
        return f"{self.symbol}.{self.venue}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """Parse `SYMBOL.venue`; raise ValueError naming the text when it is malformed."""
        symbol, sep, venue = text.rpartition(".")
        if not sep or not symbol or not venue:
            raise ValueError(f"instrument id {text!r} is not of the form SYMBOL.venue")
        return cls(symbol=symbol, venue=venue)


def decimals_of(step: Decimal) -> int:
    """Return the number of decimal places of a positive step (`0.010` -> 2)."""
    exponent = step.normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"step {step} is not a finite number")
    return max(0, -exponent)


@dataclass(frozen=True, slots=True)
class Instrument:
    """Venue rules of one instrument.

    Book prices and sizes are held as integers in units of `10**-price_decimals` and
    `10**-size_decimals`, so no book comparison ever involves a float.
    """

    id: InstrumentId
    venue_symbol: str
    kind: MarketKind
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal
    contract_size: Decimal = Decimal(1)
    # Decimals the venue publishes book prices and sizes with; -1: those of tick and lot.
    # (Binance spot books carry sizes finer than the order lot size.)
    price_precision: int = -1
    size_precision: int = -1
    price_decimals: int = field(init=False)
    size_decimals: int = field(init=False)

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size", "contract_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{self.id}: {name} must be positive")
        if self.min_notional < 0:
            raise ValueError(f"{self.id}: min_notional must not be negative")
        price = max(self.price_precision, decimals_of(self.tick_size))
        size = max(self.size_precision, decimals_of(self.lot_size))
        if price > 12 or size > 12:
            raise ValueError(f"{self.id}: more than 12 decimals cannot be held in int64 units")
        object.__setattr__(self, "price_decimals", price)
        object.__setattr__(self, "size_decimals", size)

    def price_from_units(self, units: int) -> Decimal:
        """Convert integer book price units to an exact Decimal."""
        return Decimal(units).scaleb(-self.price_decimals)

    def size_from_units(self, units: int) -> Decimal:
        """Convert integer book size units to an exact Decimal."""
        return Decimal(units).scaleb(-self.size_decimals)

    def size_to_units(self, size: Decimal) -> int:
        """Convert a size to integer units; raise ValueError when it is finer than the lot."""
        scaled = size.scaleb(self.size_decimals)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"{self.id}: size {size} is finer than lot size {self.lot_size}")
        return int(scaled)

    def round_size_down(self, size: Decimal) -> Decimal:
        """Round a size down to a whole number of lots."""
        lots = (size / self.lot_size).to_integral_value(rounding="ROUND_DOWN")
        return (lots * self.lot_size).quantize(self.lot_size)

    def notional(self, size: Decimal, price: Decimal) -> Decimal:
        """Return the quote-currency value of `size` at `price` (contracts count via size)."""
        return size * price * self.contract_size


class PortfolioView(Protocol):
    """What strategies and risk may know of the portfolio: read-only."""

    def position(self, instrument: InstrumentId) -> Decimal:
        """Return the signed position size (base units or contracts)."""

    def cash(self) -> Decimal:
        """Return the account-currency cash."""

    def equity(self) -> Decimal:
        """Return the account-currency equity at the latest marks."""
