"""Volume indicators on bars: on-balance volume and rolling VWAP with its deviation.

Same three-part shape as `indicators.py`. OBV follows TA-Lib (TA_OBV: it starts at the first
bar's volume). Rolling VWAP has no TA-Lib equivalent: over the last n bars it is
sum(typical price * volume) / sum(volume) with the typical price (high + low + close) / 3
(Berkowitz, Logue and Noser, "The Total Cost of Transactions on the NYSE", J. Finance 1988,
define VWAP over trades; the typical price stands in for a bar's trades). The deviation is
close / vwap - 1. Both are NaN while the window holds no volume.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import NAN, check_period, idx, rolling_sum_nonneg, window_sum_nonneg

VWAP_OUT = 2  # vwap, deviation


# --- OBV: block [count, previous close, obv] -------------------------------------------------


def obv_size() -> int:
    """Return the state block length of OBV."""
    return 3


def obv_init(s: np.ndarray, o: int) -> None:
    """Write a fresh OBV block at `s[o:]`."""
    s[o : o + 3] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def obv_step(s: np.ndarray, o: int, close: float, volume: float) -> float:
    """Feed one bar to the OBV block at `o`; return on-balance volume (starts at the 1st volume)."""
    if s[o] == 0.0:
        s[o] = 1.0
        value = volume
    elif close > s[o + 1]:
        value = s[o + 2] + volume
    elif close < s[o + 1]:
        value = s[o + 2] - volume
    else:
        value = s[o + 2]
    s[o + 1] = close
    s[o + 2] = value
    return value


@njit(cache=True, nogil=True, error_model="numpy")
def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Return Granville's on-balance volume, starting from the first bar's volume."""
    out = np.empty(close.size)
    if close.size == 0:
        return out
    value = volume[0]
    out[0] = value
    for i in range(1, close.size):
        if close[i] > close[i - 1]:
            value += volume[i]
        elif close[i] < close[i - 1]:
            value -= volume[i]
        out[i] = value
    return out


def obv_state() -> np.ndarray:
    """Return a fresh state for `obv_update`."""
    return np.zeros(obv_size())


@njit(cache=True, nogil=True, error_model="numpy")
def obv_update(state: np.ndarray, close: float, volume: float) -> float:
    """Feed one bar; return OBV."""
    return obv_step(state, 0, close, volume)


# --- rolling VWAP: block [n, count, pv sum, pv pos, v sum, v pos, pv ring(n), v ring(n)] -----


def vwap_size(n: int) -> int:
    """Return the state block length of a rolling VWAP over `n` bars."""
    return 6 + 2 * n


def vwap_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh rolling VWAP block at `s[o:]`."""
    check_period(n)
    s[o : o + vwap_size(n)] = 0.0
    s[o] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _vwap_value(pv: float, v: float, close: float) -> tuple[float, float]:
    if not v > 0.0:
        return NAN, NAN
    value = pv / v
    return value, close / value - 1.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def vwap_step(
    s: np.ndarray, o: int, high: float, low: float, close: float, volume: float,
    out: np.ndarray, k: int,
) -> None:
    """Feed one bar to the VWAP block at `o`; write VWAP and deviation to `out[k:k+2]`."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    typical = (high + low + close) / 3.0
    pv = window_sum_nonneg(s, o + 2, o + 6, n, count, typical * volume)
    v = window_sum_nonneg(s, o + 4, o + 6 + n, n, count, volume)
    if count < n:
        out[k] = NAN
        out[k + 1] = NAN
        return
    out[k], out[k + 1] = _vwap_value(pv, v, close)


@njit(cache=True, nogil=True, error_model="numpy")
def vwap(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return rolling VWAP over `n` bars and the close's relative deviation from it."""
    if n < 1:
        raise ValueError("period must be >= 1")
    pv = rolling_sum_nonneg((high + low + close) / 3.0 * volume, n)
    v = rolling_sum_nonneg(volume, n)
    value = np.full(close.size, NAN)
    dev = np.full(close.size, NAN)
    for i in range(n - 1, close.size):
        value[i], dev[i] = _vwap_value(pv[i], v[i], close[i])
    return value, dev


def vwap_state(n: int) -> np.ndarray:
    """Return a fresh state for `vwap_update`."""
    s = np.zeros(vwap_size(n))
    vwap_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def vwap_update(
    state: np.ndarray, high: float, low: float, close: float, volume: float, out: np.ndarray
) -> None:
    """Feed one bar; write rolling VWAP and deviation to `out[0:2]`."""
    vwap_step(state, 0, high, low, close, volume, out, 0)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    c = np.linspace(1.0, 2.0, 40)
    v = np.ones(40)
    obv(c, v)
    obv_update(obv_state(), 1.0, 1.0)
    vwap(c + 0.1, c - 0.1, c, v, 5)
    vwap_update(vwap_state(5), 1.1, 0.9, 1.0, 1.0, np.empty(VWAP_OUT))
