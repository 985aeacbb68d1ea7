"""Checks over scanned (side, price units, size units) level arrays.

A venue frame is input, not an invariant: a negative price or size, or a side other than 1/-1,
makes the frame malformed (rejected and counted by the feed) before it can reach a book, whose
kernel would otherwise stop on it as a broken invariant.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def first_invalid_level(levels: np.ndarray, n: int) -> int:
    """Return the index of the first of `levels[:n]` with a bad side or a negative value, or -1."""
    for j in range(n):
        side = levels[j, 0]
        if (side != 1 and side != -1) or levels[j, 1] < 0 or levels[j, 2] < 0:
            return j
    return -1


def warmup() -> None:
    """Compile the checks with production types."""
    first_invalid_level(np.array([[1, 100, 5], [-1, 101, 7]], np.int64), 2)
