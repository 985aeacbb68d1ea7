"""`BookView`: the one read-only face of an order book that execution, features and strategies use.

The level arrays are the book's own (no copy per event): readers index them, never write them.
Hot paths read `top` once and index it with the `TOP_*` slots; a property per field costs a
call and an int conversion per read, which the matcher and the feature engine cannot afford
on every book event.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import numpy as np

from tradebot.core.book import TOP_ASK, TOP_ASK_SIZE, TOP_BID, TOP_BID_SIZE
from tradebot.domain import Instrument

__all__ = ["TOP_ASK", "TOP_ASK_SIZE", "TOP_BID", "TOP_BID_SIZE", "BookView"]


class BookView(Protocol):
    """Read-only queries over one instrument's L2 book in integer price and size units.

    Layout of the arrays: see `tradebot.core.book` (bids in row 0, asks in row 1, best level
    last; `top[TOP_BID]`.. `top[TOP_ASK_SIZE]` is 0 for an empty side).
    """

    @property
    def valid(self) -> bool:
        """Return True while the feed has the book synced (only then may it fill an order)."""

    @property
    def instrument(self) -> Instrument:
        """Return the instrument, whose decimals define the units."""

    @property
    def price_scale(self) -> float:
        """Return 10**price_decimals as a float: price units / price_scale = price."""

    @property
    def size_scale(self) -> float:
        """Return 10**size_decimals as a float: size units / size_scale = size."""

    @property
    def keys(self) -> np.ndarray:
        """Return the level keys `[2, cap]` (bid prices, negated ask prices, ascending)."""

    @property
    def sizes(self) -> np.ndarray:
        """Return the level sizes `[2, cap]` in size units, beside `keys`."""

    @property
    def counts(self) -> np.ndarray:
        """Return the number of levels of each side `[2]`."""

    @property
    def top(self) -> np.ndarray:
        """Return the top of book `[4]`, indexed by the `TOP_*` slots."""

    @property
    def bid_units(self) -> int:
        """Return the best bid price units (0 when the side is empty)."""

    @property
    def bid_size_units(self) -> int:
        """Return the size units at the best bid (0 when the side is empty)."""

    @property
    def ask_units(self) -> int:
        """Return the best ask price units (0 when the side is empty)."""

    @property
    def ask_size_units(self) -> int:
        """Return the size units at the best ask (0 when the side is empty)."""

    def mid_price(self) -> Decimal | None:
        """Return the exact mid price, or None when a side is empty."""

    def levels(self, side: int, depth: int) -> list[tuple[Decimal, Decimal]]:
        """Return the best `depth` levels of a side (1 bids, -1 asks) as exact Decimals."""

    def walk(self, taker_side: int, quantity_units: int, limit_units: int = 0) -> np.ndarray:
        """Return the (price units, size units) a taker would take, best level first."""
