"""Stochastic oscillator (G. Lane) on bars: slow %K and %D.

Same three-part shape as `indicators.py`. Fast %K = 100 (close - lowest low) / (highest high -
lowest low) over k bars, slow %K = SMA(fast %K, k_smooth), %D = SMA(slow %K, d), as TA_STOCH
with SMA averages; fast %K is 50 on a flat window (TA-Lib gives 0). Slow %K is emitted as soon
as it is defined (TA-Lib holds it back until %D is).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    nan_head,
    ring_push,
    ring_push_max,
    ring_push_min,
    ring_sum,
)

STOCH_OUT = 2  # %K, %D


# --- Stochastic: block [k, count, pos, high ring(k), low ring(k), mean(k_smooth), mean(d)] ---
# %K and %D are means over a few values, summed afresh each time: a run of zeros averages to
# exactly 0 (TA-Lib's running sum leaves rounding residue such as -3e-14).


def _mean_size(n: int) -> int:
    return 4 + n


def _mean_init(s: np.ndarray, o: int, n: int) -> None:
    check_period(n)
    s[o : o + _mean_size(n)] = 0.0
    s[o] = n
    s[o + 2] = 1.0 / n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _mean_step(s: np.ndarray, o: int, x: float) -> float:
    # block [n, count, 1/n, pos, ring(n)]; the windows are short: sum them directly.
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    ring_push(s, o + 4, n, o + 3, x)
    if count < n:
        return NAN
    return ring_sum(s, o + 4, n, idx(s[o + 3])) * s[o + 2]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _window_mean(x: np.ndarray, n: int, scale: float, out: np.ndarray) -> None:
    # out[i] = mean of x[i-n+1 .. i], summed oldest first like the ring, from i = n-1 on.
    for i in range(n - 1, x.size):
        total = 0.0
        for j in range(i - n + 1, i + 1):
            total += x[j]
        out[i] = total * scale


def stoch_size(k: int, k_smooth: int, d: int) -> int:
    """Return the state block length of the Stochastic oscillator."""
    return 3 + 2 * k + _mean_size(k_smooth) + _mean_size(d)


def stoch_init(s: np.ndarray, o: int, k: int, k_smooth: int, d: int) -> None:
    """Write a fresh Stochastic block at `s[o:]`."""
    check_period(k)
    s[o : o + 3 + 2 * k] = 0.0
    s[o] = k
    _mean_init(s, o + 3 + 2 * k, k_smooth)
    _mean_init(s, o + 3 + 2 * k + _mean_size(k_smooth), d)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _fast_k(close: float, highest: float, lowest: float) -> float:
    diff = highest - lowest
    if diff == 0.0:
        return 50.0  # flat window: the close sits in the middle of a zero range
    return 100.0 * (close - lowest) / diff


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def stoch_step(
    s: np.ndarray, o: int, high: float, low: float, close: float, out: np.ndarray, k: int
) -> None:
    """Feed one bar to the Stochastic block at `o`; write slow %K and %D to `out[k:k+2]`."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    pos = idx(s[o + 2])
    s[o + 2] = pos + 1 if pos + 1 < n else 0
    highest = ring_push_max(s, o + 3, n, pos, high)
    lowest = ring_push_min(s, o + 3 + n, n, pos, low)
    out[k] = NAN
    out[k + 1] = NAN
    if count < n:
        return
    o_k = o + 3 + 2 * n
    slow = _mean_step(s, o_k, _fast_k(close, highest, lowest))
    out[k] = slow
    if slow == slow:
        out[k + 1] = _mean_step(s, o_k + 4 + idx(s[o_k]), slow)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _fast_k_series(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, k: int, fast: np.ndarray
) -> None:
    # Track where each window's extremes sit; rescan only when one leaves, as TA-Lib does.
    hi = -1  # the first window is scanned in full
    lo = -1
    highest = 0.0
    lowest = 0.0
    for i in range(k - 1, close.size):
        start = i - k + 1
        if hi < start:
            hi = start
            highest = high[start]
            for j in range(start + 1, i + 1):
                if high[j] >= highest:
                    highest = high[j]
                    hi = j
        elif high[i] >= highest:
            hi = i
            highest = high[i]
        if lo < start:
            lo = start
            lowest = low[start]
            for j in range(start + 1, i + 1):
                if low[j] <= lowest:
                    lowest = low[j]
                    lo = j
        elif low[i] <= lowest:
            lo = i
            lowest = low[i]
        fast[i] = _fast_k(close[i], highest, lowest)


@njit(cache=True, nogil=True, error_model="numpy")
def stoch(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, k: int, k_smooth: int, d: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return slow %K (SMA of fast %K) and %D (SMA of slow %K), as TA_STOCH with SMA."""
    if k < 1 or k_smooth < 1 or d < 1:
        raise ValueError("periods must be >= 1")
    size = close.size
    first_k = k + k_smooth - 2
    first_d = first_k + d - 1
    slow = nan_head(size, first_k)
    pct_d = nan_head(size, first_d)
    if size < k:
        return slow, pct_d
    fast = np.empty(size)
    _fast_k_series(high, low, close, k, fast)
    _window_mean(fast[k - 1 :], k_smooth, 1.0 / k_smooth, slow[k - 1 :])
    if size > first_k:
        _window_mean(slow[first_k:], d, 1.0 / d, pct_d[first_k:])
    return slow, pct_d


def stoch_state(k: int, k_smooth: int, d: int) -> np.ndarray:
    """Return a fresh state for `stoch_update`."""
    s = np.zeros(stoch_size(k, k_smooth, d))
    stoch_init(s, 0, k, k_smooth, d)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def stoch_update(state: np.ndarray, high: float, low: float, close: float, out: np.ndarray) -> None:
    """Feed one bar; write slow %K and %D to `out[0:2]`."""
    stoch_step(state, 0, high, low, close, out, 0)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    c = np.linspace(1.0, 2.0, 40)
    stoch(c + 0.1, c - 0.1, c, 5, 3, 3)
    stoch_update(stoch_state(5, 3, 3), 1.1, 0.9, 1.0, np.empty(STOCH_OUT))
