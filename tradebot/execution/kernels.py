"""Numba kernel of the simulated venue: the displayed size at many prices in one call.

It reads the book arrays of `core/book.py` (row 0 bids keyed by price, row 1 asks keyed by
-price, ascending) and never modifies them.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def level_sizes(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, rows: np.ndarray,
                prices: np.ndarray, n: int, out: np.ndarray) -> None:
    """Write the size shown at `prices[i]` on `rows[i]` (0 bids, 1 asks) into `out[i]`."""
    for i in range(n):
        row = rows[i]
        key = prices[i] if row == 0 else -prices[i]
        lo = 0
        hi = counts[row]
        while lo < hi:
            mid = (lo + hi) >> 1
            if keys[row, mid] < key:
                lo = mid + 1
            else:
                hi = mid
        out[i] = sizes[row, lo] if lo < counts[row] and keys[row, lo] == key else 0


def level_sizes_reference(book_levels: dict[tuple[int, int], int], rows: np.ndarray,
                          prices: np.ndarray) -> np.ndarray:
    """Plain-Python reference of `level_sizes` over a {(row, price): size} mapping."""
    return np.array([book_levels.get((int(r), int(p)), 0) for r, p in zip(rows, prices,
                                                                          strict=True)],
                    np.int64)


def warmup() -> None:
    """Compile the kernel with production types."""
    keys = np.zeros((2, 4), np.int64)
    sizes = np.zeros((2, 4), np.int64)
    counts = np.zeros(2, np.int64)
    q = np.zeros(1, np.int64)
    level_sizes(keys, sizes, counts, q, q, 1, np.zeros(1, np.int64))
