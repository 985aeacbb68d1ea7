"""L2 order book kernels over integer price and size units.

Each side holds its best `max_levels` levels: a diff stream reaches thousands of levels deep
(Binance USD-M BTCUSDT: 5,000 bids after six minutes) and every level kept below the top makes
a deep update cost more; trading and checksums look at the top tens.

Layout of one book (capacity `cap`):
- `keys[2, cap]` int64: row 0 bids keyed by price, row 1 asks keyed by -price, each ascending,
  so the best level of both sides sits at index `counts[side] - 1` and top-of-book changes
  shift few elements;
- `sizes[2, cap]` int64 size units; `counts[2]` int64 levels per side;
- `top[4]` int64 written after every apply: best bid price, size, best ask price, size
  (0 when a side is empty), at the slots `TOP_BID`, `TOP_BID_SIZE`, `TOP_ASK`, `TOP_ASK_SIZE`.
An update array `levels[k, 3]` holds (side, price units, size units): side 1 bid, -1 ask;
size 0 removes the level (removing an absent level is normal and ignored).
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK = 0
CAPACITY = 1  # nothing applied: grow the arrays and call again
CROSSED = 2  # applied, but best bid >= best ask: the book is invalid
BAD_LEVEL = 3  # a negative price or size or an unknown side: nothing applied

# Slots of `top` (numba compiles module-level ints as constants: naming them costs nothing).
TOP_BID = 0  # best bid price units
TOP_BID_SIZE = 1  # size units at the best bid
TOP_ASK = 2  # best ask price units
TOP_ASK_SIZE = 3  # size units at the best ask


@njit(cache=True, nogil=True)
def _search(keys: np.ndarray, row: int, n: int, key: int) -> int:
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[row, mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def _apply_side(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, row: int,  # noqa: C901
                levels: np.ndarray, n_levels: int, side: int, pend_k: np.ndarray,
                pend_s: np.ndarray, max_levels: int) -> None:
    """Apply one side's updates with one merge pass instead of a shift per level.

    Sizes of existing levels change in place and deletions become tombstones (size 0); new
    levels collect in `pend_*`. Then one forward pass drops the tombstones and one backward
    pass merges the sorted new levels, each touching only the part of the array at or above
    the lowest changed index (the best level sits at the end, so top-of-book churn is cheap).
    """
    n = counts[row]
    n_pend = 0
    lowest_del = n
    for j in range(n_levels):
        if levels[j, 0] != side:
            continue
        key = levels[j, 1] if side == 1 else -levels[j, 1]
        size = levels[j, 2]
        pos = _search(keys, row, n, key)
        if pos < n and keys[row, pos] == key:
            sizes[row, pos] = size
            if size == 0 and pos < lowest_del:
                lowest_del = pos
            continue
        found = -1
        for q in range(n_pend):
            if pend_k[q] == key:
                found = q
        if found >= 0:
            pend_s[found] = size
        elif size > 0 and not (n >= max_levels and key < keys[row, 0]):
            pend_k[n_pend] = key
            pend_s[n_pend] = size
            n_pend += 1
    # Drop tombstones (deleted levels, or levels revived and deleted again).
    w = lowest_del
    for i in range(lowest_del, n):
        if sizes[row, i] != 0:
            keys[row, w] = keys[row, i]
            sizes[row, w] = sizes[row, i]
            w += 1
    n = w
    # Sort the pending inserts (few per message: insertion sort), skipping cancelled ones.
    m = 0
    for q in range(n_pend):
        if pend_s[q] == 0:
            continue
        k = pend_k[q]
        v = pend_s[q]
        i = m - 1
        while i >= 0 and pend_k[i] > k:
            pend_k[i + 1] = pend_k[i]
            pend_s[i + 1] = pend_s[i]
            i -= 1
        pend_k[i + 1] = k
        pend_s[i + 1] = v
        m += 1
    # Merge from the top down.
    i = n - 1
    j = m - 1
    w = n + m - 1
    while j >= 0:
        if i >= 0 and keys[row, i] > pend_k[j]:
            keys[row, w] = keys[row, i]
            sizes[row, w] = sizes[row, i]
            i -= 1
        else:
            keys[row, w] = pend_k[j]
            sizes[row, w] = pend_s[j]
            j -= 1
        w -= 1
    n += m
    if n > max_levels + (max_levels >> 2):
        # Amortised trim: drop the worst levels in one shift once a quarter over the limit.
        drop = n - max_levels
        for i in range(max_levels):
            keys[row, i] = keys[row, i + drop]
            sizes[row, i] = sizes[row, i + drop]
        n = max_levels
    counts[row] = n


@njit(cache=True, nogil=True)
def _write_top(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, top: np.ndarray) -> int:
    nb = counts[0]
    na = counts[1]
    top[TOP_BID] = keys[0, nb - 1] if nb > 0 else 0
    top[TOP_BID_SIZE] = sizes[0, nb - 1] if nb > 0 else 0
    top[TOP_ASK] = -keys[1, na - 1] if na > 0 else 0
    top[TOP_ASK_SIZE] = sizes[1, na - 1] if na > 0 else 0
    if nb > 0 and na > 0 and top[TOP_BID] >= top[TOP_ASK]:
        return CROSSED
    return OK


@njit(cache=True, nogil=True)
def book_apply(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, levels: np.ndarray,
               n_levels: int, top: np.ndarray, max_levels: int) -> int:
    """Apply `levels[:n_levels]` to the book and write the top of book; return a status.

    Each side keeps its best `max_levels` levels (up to a quarter more between trims): a new
    level worse than the worst kept one on a full side is not tracked.
    """
    cap = keys.shape[1]
    if counts[0] + n_levels > cap or counts[1] + n_levels > cap:
        return CAPACITY
    for j in range(n_levels):
        side = levels[j, 0]
        if levels[j, 1] < 0 or levels[j, 2] < 0 or (side != 1 and side != -1):
            return BAD_LEVEL  # checked before anything changes: the book is untouched
    pend_k = np.empty(n_levels, np.int64)
    pend_s = np.empty(n_levels, np.int64)
    _apply_side(keys, sizes, counts, 0, levels, n_levels, 1, pend_k, pend_s, max_levels)
    _apply_side(keys, sizes, counts, 1, levels, n_levels, -1, pend_k, pend_s, max_levels)
    return _write_top(keys, sizes, counts, top)


@njit(cache=True, nogil=True)
def book_clear(counts: np.ndarray, top: np.ndarray) -> None:
    """Empty both sides."""
    counts[0] = 0
    counts[1] = 0
    top[:] = 0


@njit(cache=True, nogil=True)
def book_walk(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, taker_side: int,
              quantity: int, limit_price: int, out: np.ndarray) -> int:
    """Walk the opposite side for a taker of `quantity` size units, best level first.

    `limit_price` <= 0 means no limit. Writes (price units, size units) pairs taken into
    `out[k, 2]` and returns the number of levels used; the book itself is not modified.
    """
    row = 1 if taker_side == 1 else 0
    n = counts[row]
    remaining = quantity
    used = 0
    i = n - 1
    while remaining > 0 and i >= 0 and used < out.shape[0]:
        price = -keys[row, i] if row == 1 else keys[row, i]
        if limit_price > 0 and ((taker_side == 1 and price > limit_price)
                                or (taker_side == -1 and price < limit_price)):
            break
        take = min(remaining, sizes[row, i])
        out[used, 0] = price
        out[used, 1] = take
        remaining -= take
        used += 1
        i -= 1
    return used


@njit(cache=True, nogil=True)
def book_levels(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, row: int, depth: int,
                out: np.ndarray) -> int:
    """Copy up to `depth` best levels of a side (0 bids, 1 asks) as (price, size) into `out`."""
    n = counts[row]
    k = min(depth, n, out.shape[0])
    for j in range(k):
        key = keys[row, n - 1 - j]
        out[j, 0] = -key if row == 1 else key
        out[j, 1] = sizes[row, n - 1 - j]
    return k


@njit(cache=True, nogil=True)
def level_sizes(keys: np.ndarray, sizes: np.ndarray, counts: np.ndarray, rows: np.ndarray,
                prices: np.ndarray, n: int, out: np.ndarray) -> None:
    """Write the size shown at `prices[i]` on `rows[i]` (0 bids, 1 asks) into `out[i]`.

    One call answers every price a simulated venue's resting orders sit at.
    """
    for i in range(n):
        row = rows[i]
        key = prices[i] if row == 0 else -prices[i]
        pos = _search(keys, row, counts[row], key)
        out[i] = sizes[row, pos] if pos < counts[row] and keys[row, pos] == key else 0


def new_book(capacity: int = 1024) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Allocate empty (keys, sizes, counts, top) arrays for one book."""
    return (np.zeros((2, capacity), np.int64), np.zeros((2, capacity), np.int64),
            np.zeros(2, np.int64), np.zeros(4, np.int64))


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    keys, sizes, counts, top = new_book(8)
    levels = np.array([[1, 100, 5], [-1, 101, 7]], np.int64)
    book_apply(keys, sizes, counts, levels, 2, top, 1000)
    out = np.zeros((4, 2), np.int64)
    book_walk(keys, sizes, counts, 1, 3, 0, out)
    book_levels(keys, sizes, counts, 0, 4, out)
    q = np.zeros(1, np.int64)
    level_sizes(keys, sizes, counts, q, q, 1, np.zeros(1, np.int64))
    book_clear(counts, top)
