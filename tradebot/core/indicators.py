"""Moving averages and momentum on bars: SMA, EMA, WMA, RSI (Wilder).

Every indicator comes in three parts:
- `<name>(...)`: batch, arrays in, arrays out, NaN until warmed up;
- `<name>_state(...)` (Python) builds a state array, `<name>_update(state, ...)` feeds it one bar;
- `<name>_size`, `<name>_init` and `<name>_step(s, o, ...)` let the fused kernel pack the same
  state block at offset `o` of a larger array.

Definitions and seeding follow TA-Lib (default compatibility, unstable period 0), so outputs agree
with it from the first value; the operation order mirrors TA-Lib, except that Wilder's
smoothing is computed as prev (n-1)/n + x/n (an ulp or so apart, and twice as fast).
Documented departure: where RSI's average gain and loss are both zero (a flat window) RSI is
50, not TA-Lib's 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import NAN, check_period, idx, nan_head, ring_push, wilder

# --- SMA: block [n, count, partial sum, ring pos, ring(n)] ------------------------------------


def sma_size(n: int) -> int:
    """Return the state block length of an SMA over `n` values."""
    return 4 + n


def sma_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh SMA block at `s[o:]`."""
    check_period(n)
    s[o : o + sma_size(n)] = 0.0
    s[o] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def sma_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the SMA block at `o`; return the mean of the last n values or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    total = s[o + 2] + x
    ring_push(s, o + 4, n, o + 3, x)
    if count < n:
        s[o + 2] = total
        return NAN
    # TA-Lib order: add the new value, divide, then drop the oldest of the window.
    s[o + 2] = total - s[o + 4 + idx(s[o + 3])]
    return total / n


@njit(cache=True, nogil=True, error_model="numpy")
def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Return the simple moving average of `x` over `n` values."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = nan_head(x.size, n - 1)
    total = 0.0
    for i in range(min(n - 1, x.size)):
        total += x[i]
    for i in range(n - 1, x.size):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]
    return out


def sma_state(n: int) -> np.ndarray:
    """Return a fresh state for `sma_update`."""
    s = np.zeros(sma_size(n))
    sma_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def sma_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the SMA or NaN."""
    return sma_step(state, 0, x)


# --- EMA: block [n, k, count, value or seed sum]; seeded with the SMA of the first n ---------


def ema_size(n: int) -> int:
    """Return the state block length of an EMA."""
    return 4


def ema_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh EMA block at `s[o:]`."""
    check_period(n)
    s[o : o + 4] = (n, 2.0 / (n + 1), 0.0, 0.0)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ema_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the EMA block at `o`; return the EMA or NaN."""
    n = s[o]
    count = s[o + 2] + 1.0
    s[o + 2] = count
    if count < n:
        s[o + 3] += x
        return NAN
    value = (s[o + 3] + x) / n if count == n else (x - s[o + 3]) * s[o + 1] + s[o + 3]
    s[o + 3] = value
    return value


@njit(cache=True, nogil=True, error_model="numpy")
def ema(x: np.ndarray, n: int) -> np.ndarray:
    """Return the exponential moving average (k = 2/(n+1), seeded with the first n-value SMA)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = nan_head(x.size, n - 1)
    if x.size < n:
        return out
    k = 2.0 / (n + 1)
    value = 0.0
    for i in range(n):
        value += x[i]
    value /= n
    out[n - 1] = value
    for i in range(n, x.size):
        value = ((x[i] - value) * k) + value
        out[i] = value
    return out


def ema_state(n: int) -> np.ndarray:
    """Return a fresh state for `ema_update`."""
    s = np.zeros(ema_size(n))
    ema_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def ema_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the EMA or NaN."""
    return ema_step(state, 0, x)


# --- WMA: block [n, count, sub, sum, trailing, pos, ring(n)] ---------------------------------


def wma_size(n: int) -> int:
    """Return the state block length of a WMA over `n` values."""
    return 6 + n


def wma_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh WMA block at `s[o:]`."""
    check_period(n)
    s[o : o + wma_size(n)] = 0.0
    s[o] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def wma_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the WMA block at `o`; return the linearly weighted mean or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    ring_push(s, o + 6, n, o + 5, x)
    if count < n:
        s[o + 2] += x
        s[o + 3] += x * count
        return NAN
    sub = s[o + 2] + x
    sub -= s[o + 4]
    total = s[o + 3] + x * n
    s[o + 4] = s[o + 6 + idx(s[o + 5])]
    s[o + 2] = sub
    s[o + 3] = total - sub
    return total / ((n * (n + 1)) >> 1)


@njit(cache=True, nogil=True, error_model="numpy")
def wma(x: np.ndarray, n: int) -> np.ndarray:
    """Return the linearly weighted moving average (weights 1..n, newest heaviest)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = nan_head(x.size, n - 1)
    divider = (n * (n + 1)) >> 1
    sub = 0.0
    total = 0.0
    for i in range(min(n - 1, x.size)):
        sub += x[i]
        total += x[i] * (i + 1)
    trailing = 0.0
    for i in range(n - 1, x.size):
        sub += x[i]
        sub -= trailing
        total += x[i] * n
        trailing = x[i - n + 1]
        out[i] = total / divider
        total -= sub
    return out


def wma_state(n: int) -> np.ndarray:
    """Return a fresh state for `wma_update`."""
    s = np.zeros(wma_size(n))
    wma_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def wma_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the WMA or NaN."""
    return wma_step(state, 0, x)


# --- RSI (Wilder): block [n, count, previous, avg gain, avg loss, 1/n, (n-1)/n] --------------


def rsi_size(n: int) -> int:
    """Return the state block length of an RSI."""
    return 7


def rsi_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh RSI block at `s[o:]`."""
    check_period(n)
    s[o : o + 7] = (n, 0.0, 0.0, 0.0, 0.0, 1.0 / n, (n - 1) / n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _rsi_value(gain: float, loss: float) -> float:
    total = gain + loss
    if total == 0.0:
        return 50.0  # no movement at all: neither overbought nor oversold
    return 100.0 * (gain / total)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def rsi_step(s: np.ndarray, o: int, x: float) -> float:
    """Feed `x` to the RSI block at `o`; return Wilder's RSI or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    change = x - s[o + 2]
    s[o + 2] = x
    if count == 1.0:
        return NAN
    up = max(change, 0.0)
    down = max(-change, 0.0)
    if count <= n:
        s[o + 3] += up
        s[o + 4] += down
        return NAN
    inv = s[o + 5]
    if count == n + 1:
        gain = (s[o + 3] + up) * inv
        loss = (s[o + 4] + down) * inv
    else:
        gain = wilder(s[o + 3], up, s[o + 6], inv)
        loss = wilder(s[o + 4], down, s[o + 6], inv)
    s[o + 3] = gain
    s[o + 4] = loss
    return _rsi_value(gain, loss)


@njit(cache=True, nogil=True, error_model="numpy")
def rsi(x: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's relative strength index (first value at index n)."""
    if n < 1:
        raise ValueError("period must be >= 1")
    out = nan_head(x.size, n)
    if x.size <= n:
        return out
    inv = 1.0 / n
    keep = (n - 1) / n
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        change = x[i] - x[i - 1]
        gain += max(change, 0.0)
        loss += max(-change, 0.0)
    gain *= inv
    loss *= inv
    out[n] = _rsi_value(gain, loss)
    for i in range(n + 1, x.size):
        change = x[i] - x[i - 1]
        gain = wilder(gain, max(change, 0.0), keep, inv)
        loss = wilder(loss, max(-change, 0.0), keep, inv)
        out[i] = _rsi_value(gain, loss)
    return out


def rsi_state(n: int) -> np.ndarray:
    """Return a fresh state for `rsi_update`."""
    s = np.zeros(rsi_size(n))
    rsi_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def rsi_update(state: np.ndarray, x: float) -> float:
    """Feed one value; return the RSI or NaN."""
    return rsi_step(state, 0, x)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    x = np.linspace(1.0, 2.0, 40)
    for batch, state, update in (
        (sma, sma_state, sma_update), (ema, ema_state, ema_update),
        (wma, wma_state, wma_update), (rsi, rsi_state, rsi_update),
    ):
        batch(x, 5)
        update(state(5), 1.0)
