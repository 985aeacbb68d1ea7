"""Statistical indicators on bars: rate of change, Bollinger bands, rolling z-score, realized
volatility (the Stochastic oscillator is in `indicators_stoch.py`).

Same three-part shape as `indicators.py`. Windows carry the moments of `rolling.py`: running
sums of (x - K) and (x - K)^2 with a shift K near the mean, computed in two passes when the
window fills, every 256 values after that, and once the sum of squared deviations falls far
below the peak squared sum since the last recompute; a standard deviation below 1e-12 of the
mean counts as zero, so a flat window reads as flat, not as rounding noise.

- ROC: TA-Lib's TA_ROC, 100 * (x[t] / x[t-n] - 1); NaN over a zero price (TA-Lib gives 0).
- Bollinger bands (J. Bollinger, "Bollinger on Bollinger Bands", 2001): SMA(n) +/- k population
  standard deviations, as TA_BBANDS; %b = (close - lower) / (upper - lower) and bandwidth =
  (upper - lower) / middle, both from the same book; %b is NaN on a flat window.
- Rolling z-score: (x - mean) / population standard deviation over the last n values; NaN on a
  flat window.
- Realized volatility (Andersen and Bollerslev, "Answering the skeptics", Int. Econ. Review
  1998): sqrt of the sum of the last n squared log returns, not annualised.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    is_due,
    is_flat,
    moments_into,
    moments_slide,
    nan_head,
    nan_heads,
    ring_push,
    rolling_sum_nonneg,
    shifted_array,
    shifted_moments,
    window_moments,
    window_moments_read,
    window_sum_nonneg,
)

BOLLINGER_OUT = 5  # upper, middle, lower, %b, bandwidth


# --- ROC: block [n, count, pos, ring(n)] -----------------------------------------------------


def roc_size(n: int) -> int:
    """Return the state block length of a rate of change over `n` values."""
    return 3 + n


def roc_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh ROC block at `s[o:]`."""
    check_period(n)
    s[o : o + roc_size(n)] = 0.0
    s[o] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _roc_value(x: float, old: float) -> float:
    if old == 0.0:
        return NAN
    return ((x / old) - 1.0) * 100.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def roc_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the ROC block at `o`; return the percent change over n values or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    old = ring_push(s, o + 3, n, o + 2, x)
    if count <= n:
        return NAN
    return _roc_value(x, old)


@njit(cache=True, nogil=True, error_model="numpy")
def roc(x: np.ndarray, n: int) -> np.ndarray:
    """Return the rate of change in percent, 100 * (x[t] / x[t-n] - 1)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = np.full(x.size, NAN)
    for i in range(n, x.size):
        out[i] = _roc_value(x[i], x[i - n])
    return out


def roc_state(n: int) -> np.ndarray:
    """Return a fresh state for `roc_update`."""
    s = np.zeros(roc_size(n))
    roc_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def roc_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the ROC or NaN."""
    return roc_step(state, 0, x)



# --- Bollinger: block [n, count, mult, s1, s2, pos, 1/n, peak s2, shift, ring(n)] ----------


def bollinger_size(n: int, mult: float) -> int:
    """Return the state block length of Bollinger bands over `n` values."""
    return 9 + n


def bollinger_init(s: np.ndarray, o: int, n: int, mult: float) -> None:
    """Write a fresh Bollinger block at `s[o:]`."""
    check_period(n)
    if not mult > 0.0:
        raise ValueError(f"multiplier must be > 0, got {mult}")
    s[o : o + bollinger_size(n, mult)] = 0.0
    s[o] = n
    s[o + 6] = 1.0 / n
    s[o + 2] = mult


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bands(
    x: float, mean: float, m2: float, n: int, inv_n: float, mult: float
) -> tuple[float, float, float, float]:
    # upper, lower, %b, bandwidth; one division serves both ratios (r = 1 / (span mean)).
    # Selects, not branches, so the batch loop vectorizes: a flat window or a zero mean
    # discards the NaN or infinity of the square root and the division.
    width = mult * math.sqrt(m2 * inv_n)
    width = 0.0 if is_flat(m2, n, mean) else width
    upper = mean + width
    lower = mean - width
    span = upper - lower
    r = 1.0 / (span * mean)
    pctb = (x - lower) * mean * r
    bandwidth = span * span * r
    pctb = NAN if (mean == 0.0) | (width == 0.0) else pctb
    bandwidth = NAN if mean == 0.0 else bandwidth
    bandwidth = 0.0 if (width == 0.0) & (mean != 0.0) else bandwidth
    return upper, lower, pctb, bandwidth


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _fill_nan(out: np.ndarray, k: int, m: int) -> None:
    for j in range(k, k + m):
        out[j] = NAN


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def bollinger_step(s: np.ndarray, o: int, x: float, out: np.ndarray, k: int) -> None:
    """Feed `x` to the Bollinger block at `o`; write upper, middle, lower, %b, bandwidth."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    mean, m2 = window_moments(s, o + 3, o + 9, n, count, x)
    if count < n:
        _fill_nan(out, k, BOLLINGER_OUT)
        return
    out[k], out[k + 2], out[k + 3], out[k + 4] = _bands(x, mean, m2, n, s[o + 6], s[o + 2])
    out[k + 1] = mean


def bollinger(
    x: np.ndarray, n: int, mult: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return Bollinger upper, middle and lower bands, %b and bandwidth."""
    if n < 1:
        raise ValueError("period must be >= 1")
    x = np.ascontiguousarray(x, dtype=np.float64)
    upper, middle, lower, pctb, width = nan_heads(5, x.size, n - 1)
    bollinger_into(x, n, mult, upper, middle, lower, pctb, width)
    return upper, middle, lower, pctb, width


@njit(cache=True, nogil=True, error_model="numpy")
def _bands_into(x: np.ndarray, n: int, mult: float, upper: np.ndarray, middle: np.ndarray,
                lower: np.ndarray, pctb: np.ndarray, width: np.ndarray) -> None:
    # Indices from 0: no negative-index wraparound, so square roots and divisions go four
    # at a time. `width` holds m2 on entry.
    inv_n = 1.0 / n
    for i in range(x.size):
        upper[i], lower[i], pctb[i], width[i] = _bands(x[i], middle[i], width[i], n, inv_n, mult)


@njit(cache=True, nogil=True, error_model="numpy")
def bollinger_into(x: np.ndarray, n: int, mult: float, upper: np.ndarray, middle: np.ndarray,
                   lower: np.ndarray, pctb: np.ndarray, width: np.ndarray) -> None:
    """Write Bollinger bands of `x` into arrays whose first `n - 1` values are NaN already."""
    if x.size < n:
        return
    # Two loops: the moments' recurrence, then the bands, which vectorize apart from it
    # (`width` holds m2 in between).
    moments_into(x, n, middle, width)
    k = n - 1
    _bands_into(x[k:], n, mult, upper[k:], middle[k:], lower[k:], pctb[k:], width[k:])


def bollinger_state(n: int, mult: float) -> np.ndarray:
    """Return a fresh state for `bollinger_update`."""
    s = np.zeros(bollinger_size(n, mult))
    bollinger_init(s, 0, n, mult)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def bollinger_update(state: np.ndarray, x: float, out: np.ndarray) -> None:
    """Feed one value; write upper, middle, lower, %b, bandwidth to `out[0:5]`."""
    bollinger_step(state, 0, x, out, 0)


# --- z-score: block [n, count, -, s1, s2, pos, 1/n, peak, shift, ring(n)] (Bollinger's) -----


def zscore_size(n: int) -> int:
    """Return the state block length of a rolling z-score over `n` values."""
    return 9 + n


def zscore_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh z-score block at `s[o:]`."""
    check_period(n, 2)
    s[o : o + zscore_size(n)] = 0.0
    s[o] = n
    s[o + 6] = 1.0 / n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _zscore_value(x: float, mean: float, m2: float, n: int) -> float:
    if is_flat(m2, n, mean):
        return NAN
    return (x - mean) / math.sqrt(m2 / n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def zscore_read(s: np.ndarray, o: int, x: float) -> float:
    """Return the z-score of `x` in the window of the z-score or Bollinger block at `o`."""
    n = idx(s[o])
    if s[o + 1] < n:
        return NAN
    mean, m2 = window_moments_read(s, o + 3)
    return _zscore_value(x, mean, m2, n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def zscore_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the z-score block at `o`; return its z-score in the window or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    window_moments(s, o + 3, o + 9, n, count, x)
    return zscore_read(s, o, x)


@njit(cache=True, nogil=True, error_model="numpy")
def zscore(x: np.ndarray, n: int) -> np.ndarray:
    """Return the rolling z-score of `x` over `n` values (population standard deviation)."""
    if n < 2:
        raise ValueError("period must be >= 2")
    out = nan_head(x.size, n - 1)
    if x.size < n:
        return out
    shift, s1, s2 = shifted_array(x, 0, n)
    peak = s2
    inv_n = 1.0 / n
    mean, m2 = shifted_moments(shift, s1, s2, inv_n)
    out[n - 1] = _zscore_value(x[n - 1], mean, m2, n)
    for i in range(n, x.size):
        s1, s2, peak, redo = moments_slide(s1, s2, peak, shift, x[i], x[i - n], inv_n,
                                           is_due(i - n + 1))
        if redo:
            shift, s1, s2 = shifted_array(x, i - n + 1, i + 1)
            peak = s2
        mean, m2 = shifted_moments(shift, s1, s2, inv_n)
        out[i] = _zscore_value(x[i], mean, m2, n)
    return out


def zscore_state(n: int) -> np.ndarray:
    """Return a fresh state for `zscore_update`."""
    s = np.zeros(zscore_size(n))
    zscore_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def zscore_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the rolling z-score or NaN."""
    return zscore_step(state, 0, x)


# --- realized volatility: block [n, count, previous, sum, pos, ring(n)] ----------------------


def realized_vol_size(n: int) -> int:
    """Return the state block length of realized volatility over `n` returns."""
    return 5 + n


def realized_vol_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh realized-volatility block at `s[o:]`."""
    check_period(n)
    s[o : o + realized_vol_size(n)] = 0.0
    s[o] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def realized_vol_step(s: np.ndarray, o: int, price: float) -> float:
    """Feed a price to the block at `o`; return sqrt(sum of the last n squared log returns)."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    prev = s[o + 2]
    s[o + 2] = price
    if count == 1.0:
        return NAN
    r = math.log(price / prev)
    total = window_sum_nonneg(s, o + 3, o + 5, n, count - 1.0, r * r)
    if count <= n:
        return NAN
    return math.sqrt(total)


@njit(cache=True, nogil=True, error_model="numpy")
def realized_vol(price: np.ndarray, n: int) -> np.ndarray:
    """Return realized volatility over the last `n` log returns (first value at index n)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = np.full(price.size, NAN)
    if price.size <= n:
        return out
    r2 = np.empty(price.size - 1)
    for i in range(1, price.size):
        r = math.log(price[i] / price[i - 1])
        r2[i - 1] = r * r
    sums = rolling_sum_nonneg(r2, n)
    for i in range(n, price.size):
        out[i] = math.sqrt(sums[i - 1])
    return out


def realized_vol_state(n: int) -> np.ndarray:
    """Return a fresh state for `realized_vol_update`."""
    s = np.zeros(realized_vol_size(n))
    realized_vol_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def realized_vol_update(state: np.ndarray, price: float) -> float:
    """Feed one price; return realized volatility or NaN."""
    return realized_vol_step(state, 0, price)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    c = np.linspace(1.0, 2.0, 40)
    out = np.empty(BOLLINGER_OUT)
    roc(c, 5)
    roc_update(roc_state(5), 1.0)
    bollinger(c, 5, 2.0)
    bollinger_update(bollinger_state(5, 2.0), 1.0, out)
    zscore(c, 5)
    zscore_update(zscore_state(5), 1.0)
    realized_vol(c, 5)
    realized_vol_update(realized_vol_state(5), 1.0)
