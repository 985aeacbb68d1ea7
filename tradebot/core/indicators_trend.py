"""Trend and range indicators on bars: MACD, ATR (Wilder), SuperTrend.

Same three-part shape as `indicators.py` (batch; `_state`/`_update`; `_size`/`_init`/`_step`).
Multi-output steps write into `out[k:]` instead of returning a value.

MACD and ATR follow TA-Lib's seeding (MACD: both EMAs start at bar `slow-1`, the fast one
seeded with the SMA of the `fast` values ending there, as TA_MACD does), so they agree with it
from the first value. MACD's line is emitted from bar `slow-1`, where it is already defined;
TA-Lib waits for the signal line. SuperTrend (Olivier Seban) has no TA-Lib equivalent; it
follows TradingView's `ta.supertrend` reference implementation over the ATR above.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    nan_head,
    nan_heads,
    true_range,
    wilder,
)

MACD_OUT = 3  # line, signal, histogram
SUPERTREND_OUT = 2  # value, direction (+1 up: the line is the lower band; -1 down)


# --- MACD: block [fast, slow, signal, kf, ks, ksig, count, fast ema, slow ema, signal ema] ---


def macd_size(fast: int, slow: int, signal: int) -> int:
    """Return the state block length of MACD."""
    return 10


def macd_init(s: np.ndarray, o: int, fast: int, slow: int, signal: int) -> None:
    """Write a fresh MACD block at `s[o:]`."""
    check_period(fast)
    check_period(signal)
    if slow <= fast:
        raise ValueError(f"slow period must exceed fast period, got {fast}/{slow}")
    s[o : o + 10] = 0.0
    s[o : o + 6] = (fast, slow, signal, 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _macd_signal(s: np.ndarray, o: int, line: float, j: float) -> float:
    # j counts MACD-line values, 1-based: the signal EMA is seeded with the SMA of the first `sig`.
    sig = s[o + 2]
    if j < sig:
        s[o + 9] += line
        return NAN
    value = (s[o + 9] + line) / sig if j == sig else (line - s[o + 9]) * s[o + 5] + s[o + 9]
    s[o + 9] = value
    return value


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def macd_step(s: np.ndarray, o: int, x: float, out: np.ndarray, k: int) -> None:
    """Feed `x` to the MACD block at `o`; write line, signal and histogram to `out[k:k+3]`."""
    fast = s[o]
    slow = s[o + 1]
    count = s[o + 6] + 1.0
    s[o + 6] = count
    if count < slow:
        s[o + 8] += x
        if count > slow - fast:
            s[o + 7] += x
        out[k] = NAN
        out[k + 1] = NAN
        out[k + 2] = NAN
        return
    if count == slow:
        f = (s[o + 7] + x) / fast
        sl = (s[o + 8] + x) / slow
    else:
        f = ((x - s[o + 7]) * s[o + 3]) + s[o + 7]
        sl = ((x - s[o + 8]) * s[o + 4]) + s[o + 8]
    s[o + 7] = f
    s[o + 8] = sl
    line = f - sl
    signal = _macd_signal(s, o, line, count - slow + 1.0)
    out[k] = line
    out[k + 1] = signal
    out[k + 2] = line - signal


def macd(
    x: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return MACD line, signal and histogram (TA-Lib seeding; line from bar slow-1)."""
    if fast < 1 or signal < 1 or slow <= fast:
        raise ValueError("need 1 <= fast < slow and signal >= 1")
    x = np.ascontiguousarray(x, dtype=np.float64)
    (line,) = nan_heads(1, x.size, slow - 1)
    sig, hist = nan_heads(2, x.size, slow + signal - 2)
    macd_into(x, fast, slow, signal, line, sig, hist)
    return line, sig, hist


@njit(cache=True, nogil=True, error_model="numpy")
def macd_into(x: np.ndarray, fast: int, slow: int, signal: int, line: np.ndarray,
              sig: np.ndarray, hist: np.ndarray) -> None:
    """Write MACD into arrays whose heads (`slow - 1`, `slow + signal - 2`) are NaN already."""
    n = x.size
    first = slow + signal - 2
    if n < slow:
        return
    kf = 2.0 / (fast + 1)
    ks = 2.0 / (slow + 1)
    kg = 2.0 / (signal + 1)
    f = 0.0
    sl = 0.0
    for i in range(slow - 1):
        sl += x[i]
        if i >= slow - fast:
            f += x[i]
    f = (f + x[slow - 1]) / fast
    sl = (sl + x[slow - 1]) / slow
    g = 0.0
    for i in range(slow - 1, n):
        if i >= slow:
            f = (x[i] - f) * kf + f
            sl = (x[i] - sl) * ks + sl
        v = f - sl
        line[i] = v
        if i < first:
            g += v
            continue
        g = (g + v) / signal if i == first else (v - g) * kg + g
        sig[i] = g
        hist[i] = v - g


def macd_state(fast: int, slow: int, signal: int) -> np.ndarray:
    """Return a fresh state for `macd_update`."""
    s = np.zeros(macd_size(fast, slow, signal))
    macd_init(s, 0, fast, slow, signal)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def macd_update(state: np.ndarray, x: float, out: np.ndarray) -> None:
    """Feed one value; write line, signal, histogram to `out[0:3]`."""
    macd_step(state, 0, x, out, 0)


# --- ATR (Wilder): block [n, count, previous close, atr or seed sum, 1/n, (n-1)/n] -----------


def atr_size(n: int) -> int:
    """Return the state block length of ATR."""
    return 6


def atr_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh ATR block at `s[o:]`."""
    check_period(n)
    s[o : o + 6] = (n, 0.0, 0.0, 0.0, 1.0 / n, (n - 1) / n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def atr_step(s: np.ndarray, o: int, high: float, low: float, close: float) -> float:
    """Feed one bar to the ATR block at `o`; return Wilder's average true range or NaN."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    prev_close = s[o + 2]
    s[o + 2] = close
    if count == 1.0:
        return NAN
    tr = true_range(high, low, prev_close)
    if count <= n:
        s[o + 3] += tr
        return NAN
    value = (s[o + 3] + tr) / n if count == n + 1 else wilder(s[o + 3], tr, s[o + 5], s[o + 4])
    s[o + 3] = value
    return value


@njit(cache=True, nogil=True, error_model="numpy")
def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Return Wilder's ATR: SMA of the first n true ranges, then Wilder smoothing."""
    if n < 1:
        raise ValueError("period must be >= 1")
    size = close.size
    out = nan_head(size, n)
    if size <= n:
        return out
    inv = 1.0 / n
    keep = (n - 1) / n
    value = 0.0
    for i in range(1, n + 1):
        value += true_range(high[i], low[i], close[i - 1])
    value /= n
    out[n] = value
    for i in range(n + 1, size):
        value = wilder(value, true_range(high[i], low[i], close[i - 1]), keep, inv)
        out[i] = value
    return out


def atr_state(n: int) -> np.ndarray:
    """Return a fresh state for `atr_update`."""
    s = np.zeros(atr_size(n))
    atr_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def atr_update(state: np.ndarray, high: float, low: float, close: float) -> float:
    """Feed one bar; return the ATR or NaN."""
    return atr_step(state, 0, high, low, close)


# --- SuperTrend: block [mult, lower, upper, direction, previous close, atr block] ------------


def supertrend_size(n: int, mult: float) -> int:
    """Return the state block length of SuperTrend."""
    return 5 + atr_size(n)


def supertrend_init(s: np.ndarray, o: int, n: int, mult: float) -> None:
    """Write a fresh SuperTrend block at `s[o:]`."""
    if not mult > 0.0:
        raise ValueError(f"multiplier must be > 0, got {mult}")
    s[o : o + 5] = (mult, 0.0, 0.0, 0.0, 0.0)
    atr_init(s, o + 5, n)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _supertrend_bar(
    state: tuple[float, float, float, float], hl2: float, width: float, close: float,
    prev_close: float,
) -> tuple[float, float, float, float]:
    # TradingView ta.supertrend: bands ratchet unless the previous close broke them; the
    # direction flips when the close crosses the band of the current trend.
    prev_lower, prev_upper, direction, _ = state
    lower = hl2 - width
    upper = hl2 + width
    if direction != 0.0:
        if not (lower > prev_lower or prev_close < prev_lower):
            lower = prev_lower
        if not (upper < prev_upper or prev_close > prev_upper):
            upper = prev_upper
    if direction == 0.0:
        direction = -1.0  # TradingView starts in a down trend
    elif direction < 0.0:
        direction = 1.0 if close > upper else -1.0
    else:
        direction = -1.0 if close < lower else 1.0
    return lower, upper, direction, lower if direction > 0.0 else upper


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def supertrend_step(
    s: np.ndarray, o: int, high: float, low: float, close: float, out: np.ndarray, k: int
) -> None:
    """Feed one bar to the SuperTrend block at `o`; write value and direction to `out[k:k+2]`."""
    a = atr_step(s, o + 5, high, low, close)
    prev_close = s[o + 4]
    s[o + 4] = close
    if a != a:
        out[k] = NAN
        out[k + 1] = NAN
        return
    lower, upper, direction, value = _supertrend_bar(
        (s[o + 1], s[o + 2], s[o + 3], 0.0), (high + low) / 2.0, s[o] * a, close, prev_close
    )
    s[o + 1] = lower
    s[o + 2] = upper
    s[o + 3] = direction
    out[k] = value
    out[k + 1] = direction


@njit(cache=True, nogil=True, error_model="numpy")
def supertrend(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int, mult: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return SuperTrend line and direction (+1 up, -1 down) over Wilder's ATR(n)."""
    a = atr(high, low, close, n)
    value = nan_head(close.size, n)
    direction = nan_head(close.size, n)
    st = (0.0, 0.0, 0.0, 0.0)
    for i in range(n, close.size):
        st = _supertrend_bar(st, (high[i] + low[i]) / 2.0, mult * a[i], close[i], close[i - 1])
        value[i] = st[3]
        direction[i] = st[2]
    return value, direction


def supertrend_state(n: int, mult: float) -> np.ndarray:
    """Return a fresh state for `supertrend_update`."""
    s = np.zeros(supertrend_size(n, mult))
    supertrend_init(s, 0, n, mult)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def supertrend_update(
    state: np.ndarray, high: float, low: float, close: float, out: np.ndarray
) -> None:
    """Feed one bar; write SuperTrend value and direction to `out[0:2]`."""
    supertrend_step(state, 0, high, low, close, out, 0)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    c = np.linspace(1.0, 2.0, 40)
    h = c + 0.1
    lo = c - 0.1
    out = np.empty(MACD_OUT)
    macd(c, 3, 6, 2)
    macd_update(macd_state(3, 6, 2), 1.0, out)
    atr(h, lo, c, 5)
    atr_update(atr_state(5), 1.1, 0.9, 1.0)
    supertrend(h, lo, c, 5, 3.0)
    supertrend_update(supertrend_state(5, 3.0), 1.1, 0.9, 1.0, out)
