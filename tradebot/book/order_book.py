"""`OrderBook`: the arrays of one L2 book, the kernels that change them and read-only queries."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from tradebot.core import book as kbook
from tradebot.core import checksum as kcheck
from tradebot.core.book import TOP_ASK, TOP_ASK_SIZE, TOP_BID, TOP_BID_SIZE
from tradebot.domain import Instrument


class OrderBook:
    """The arrays of one L2 book and read-only queries over them (it satisfies `BookView`).

    `apply`, `clear` and `truncate` change it and `valid` says whether it may be used; only
    the feed that syncs the book calls or sets them.
    """

    def __init__(self, instrument: Instrument, capacity: int = 2048,
                 max_levels: int = 1000) -> None:
        self.instrument = instrument
        self.max_levels = max_levels
        # Set by the feeds' BookSync on every state change: an unsynced book never fills.
        self.valid = False
        self.keys, self.sizes, self.counts, self.top = kbook.new_book(capacity)
        # Dividing units by the exact power of ten gives the float nearest the decimal value.
        self.price_scale = float(10**instrument.price_decimals)
        self.size_scale = float(10**instrument.size_decimals)

    def apply(self, levels: np.ndarray, n: int) -> int:
        """Apply `levels[:n]`, growing the arrays when full; return the kernel status."""
        status = kbook.book_apply(self.keys, self.sizes, self.counts, levels, n, self.top,
                                  self.max_levels)
        while status == kbook.CAPACITY:
            self._grow(int(self.counts.max()) + n)
            status = kbook.book_apply(self.keys, self.sizes, self.counts, levels, n, self.top,
                                      self.max_levels)
        return status

    def _grow(self, needed: int) -> None:
        cap = max(needed, 2 * self.keys.shape[1])
        for name in ("keys", "sizes"):
            old = getattr(self, name)
            new = np.zeros((2, cap), np.int64)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)

    def clear(self) -> None:
        """Remove every level."""
        kbook.book_clear(self.counts, self.top)

    def truncate(self, depth: int) -> None:
        """Keep the best `depth` levels of each side (the venue sends no deletes beyond it)."""
        kcheck.book_truncate(self.keys, self.sizes, self.counts, depth)

    @property
    def bid_units(self) -> int:
        """Return the best bid price units (0 when the side is empty)."""
        return int(self.top[TOP_BID])

    @property
    def bid_size_units(self) -> int:
        """Return the size units at the best bid (0 when the side is empty)."""
        return int(self.top[TOP_BID_SIZE])

    @property
    def ask_units(self) -> int:
        """Return the best ask price units (0 when the side is empty)."""
        return int(self.top[TOP_ASK])

    @property
    def ask_size_units(self) -> int:
        """Return the size units at the best ask (0 when the side is empty)."""
        return int(self.top[TOP_ASK_SIZE])

    @property
    def best_bid(self) -> float:
        """Best bid price as a float (0.0 when the side is empty)."""
        return float(self.top[TOP_BID]) / self.price_scale

    @property
    def best_ask(self) -> float:
        """Best ask price as a float (0.0 when the side is empty)."""
        return float(self.top[TOP_ASK]) / self.price_scale

    def mid_price(self) -> Decimal | None:
        """Return the exact mid price, or None when a side is empty."""
        if self.counts[0] == 0 or self.counts[1] == 0:
            return None
        top = self.top
        return self.instrument.price_from_units(int(top[TOP_BID]) + int(top[TOP_ASK])) / 2

    def levels(self, side: int, depth: int) -> list[tuple[Decimal, Decimal]]:
        """Return the best `depth` levels of a side (1 bids, -1 asks) as exact Decimals."""
        out = np.zeros((depth, 2), np.int64)
        k = kbook.book_levels(self.keys, self.sizes, self.counts, 0 if side == 1 else 1, depth, out)
        inst = self.instrument
        return [(inst.price_from_units(int(p)), inst.size_from_units(int(s))) for p, s in out[:k]]

    def walk(self, taker_side: int, quantity_units: int, limit_units: int = 0) -> np.ndarray:
        """Return the (price units, size units) a taker would take, best level first."""
        out = np.zeros((int(self.counts.max()) + 1, 2), np.int64)
        k = kbook.book_walk(self.keys, self.sizes, self.counts, taker_side, quantity_units,
                            limit_units, out)
        return out[:k]
