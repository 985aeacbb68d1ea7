"""Fused incremental kernels: every feature of one instrument updated in one compiled call.

`update_bar(state, bar, out)` feeds one bar `[open, high, low, close, volume]` (any float64
array whose first five values are those, e.g. the emitted-bar slots of `bars.py`) to all the
bar indicators; `update_book(state, book, out)` and `update_trade(state, out, price, size,
side)` feed one book snapshot or one trade to the microstructure features. States come from
`fused_layout.bar_layout(...).new_state()` / `micro_layout(...).new_state()`, outputs from
`.new_out()`; `out[i]` is the feature `layout.names[i]`, NaN until warmed up.

Each call first checks its input and returns a code; anything but OK leaves state and `out`
untouched, so the caller can count rejections:
OK; NOT_FINITE (NaN or infinity); NEGATIVE (a price <= 0 or a size < 0); INCONSISTENT (high
below low, open or close outside them; a crossed book; a side other than -1, 0, 1);
BAD_SHAPE (a state not made by the layout, or a bar, book or out array too short: the
kernels do no bounds checks, so these are refused before anything is read).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tradebot.core.fused_layout import (
    ADX,
    ATR,
    BAR_HEAD,
    BAR_OUT,
    BAR_SIZE,
    BB,
    EMA,
    M_DEPTH,
    M_KYLE,
    M_OFI,
    M_SIZE,
    M_TFI,
    M_VPIN,
    MACD,
    MICRO_HEAD,
    MICRO_OUT,
    OBV,
    ROC,
    RSI,
    RV,
    SMA,
    ST,
    STOCH,
    VWAP,
    WMA,
    Z,
    bar_layout,
    micro_layout,
)
from tradebot.core.indicators import ema_step, rsi_step, sma_step, wma_step
from tradebot.core.indicators_adx import adx_step
from tradebot.core.indicators_stats import (
    bollinger_step,
    realized_vol_step,
    roc_step,
    zscore_read,
    zscore_step,
)
from tradebot.core.indicators_stoch import stoch_step
from tradebot.core.indicators_trend import atr_step, macd_step, supertrend_step
from tradebot.core.indicators_volume import obv_step, vwap_step
from tradebot.core.microstructure import (
    ASK_PX,
    ASK_SZ,
    BID_PX,
    BID_SZ,
    depth_imbalance_one,
    microprice_one,
    ofi_step,
    trade_imbalance_step,
)
from tradebot.core.microstructure_flow import kyle_lambda_step, vpin_step
from tradebot.core.rolling import idx

OK, NOT_FINITE, NEGATIVE, INCONSISTENT, BAD_SHAPE = 0, 1, 2, 3, 4


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def check_bar(bar: np.ndarray) -> int:
    """Return OK if `bar[:5]` is a usable OHLCV bar, else the rejection code."""
    o, h, lo, c, v = bar[0], bar[1], bar[2], bar[3], bar[4]
    # x - x is 0 for finite x and NaN otherwise; `|` keeps the tests free of branches.
    if (o - o) + (h - h) + (lo - lo) + (c - c) + (v - v) != 0.0:
        return NOT_FINITE
    if (lo <= 0.0) | (v < 0.0):
        return NEGATIVE
    if (h < lo) | (o < lo) | (o > h) | (c < lo) | (c > h):
        return INCONSISTENT
    return OK


@njit(cache=True, nogil=True, error_model="numpy")
def _bar_indicators(s: np.ndarray, h: float, lo: float, c: float, v: float,
                    out: np.ndarray) -> None:
    out[0] = sma_step(s, idx(s[SMA]), c)
    out[1] = ema_step(s, idx(s[EMA]), c)
    out[2] = wma_step(s, idx(s[WMA]), c)
    out[3] = rsi_step(s, idx(s[RSI]), c)
    macd_step(s, idx(s[MACD]), c, out, 4)
    out[7] = atr_step(s, idx(s[ATR]), h, lo, c)
    bollinger_step(s, idx(s[BB]), c, out, 8)
    supertrend_step(s, idx(s[ST]), h, lo, c, out, 13)
    stoch_step(s, idx(s[STOCH]), h, lo, c, out, 15)
    adx_step(s, idx(s[ADX]), h, lo, c, out, 17)
    out[20] = obv_step(s, idx(s[OBV]), c, v)
    vwap_step(s, idx(s[VWAP]), h, lo, c, v, out, 21)
    out[23] = realized_vol_step(s, idx(s[RV]), c)
    z = int(s[Z])
    # A negative offset: the z-score shares the Bollinger window (same length, same closes).
    out[24] = zscore_step(s, z, c) if z >= 0 else zscore_read(s, idx(s[BB]), c)
    out[25] = roc_step(s, idx(s[ROC]), c)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _update_bar(state: np.ndarray, bar: np.ndarray, out: np.ndarray) -> int:
    # No bounds checks inside: a state, bar or out of the wrong length is refused up front.
    if state.size < BAR_HEAD or state[BAR_SIZE] != state.size or bar.size < 5 or (
            out.size < BAR_OUT):
        return BAD_SHAPE
    code = check_bar(bar)
    if code == OK:
        _bar_indicators(state, bar[1], bar[2], bar[3], bar[4], out)
    return code


@njit(cache=True, nogil=True, error_model="numpy")
def update_bar(state: np.ndarray, bar: np.ndarray, out: np.ndarray) -> int:
    """Feed one OHLCV bar to every bar indicator; write all features to `out`; return a code."""
    return _update_bar(state, bar, out)


@njit(cache=True, nogil=True, error_model="numpy")
def update_bars(state: np.ndarray, bars: np.ndarray, out: np.ndarray) -> int:
    """Feed the rows of `bars[n, >=5]` in order; write each row's features to `out[n, :]`.

    Rejected rows leave their `out` row untouched. Return how many rows were rejected.
    """
    rejected = 0
    for i in range(bars.shape[0]):
        if _update_bar(state, bars[i], out[i]) != OK:
            rejected += 1
    return rejected


@njit(cache=True, nogil=True, error_model="numpy")
def replay_bars(state: np.ndarray, bars: np.ndarray, out: np.ndarray) -> int:
    """Feed the rows of `bars[n, >=5]` in order, leaving the last accepted bar's features in
    `out`; return how many rows were rejected (warms a state up from history)."""
    rejected = 0
    for i in range(bars.shape[0]):
        if _update_bar(state, bars[i], out) != OK:
            rejected += 1
    return rejected


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def check_book(book: np.ndarray, depth: int) -> int:
    """Return OK if the top `depth` levels of `book[4, levels]` are usable, else the code."""
    for j in range(min(depth, book.shape[1])):
        for r in range(4):
            if not math.isfinite(book[r, j]):
                return NOT_FINITE
            if book[r, j] < 0.0:
                return NEGATIVE
    if not (book[BID_PX, 0] > 0.0 and book[ASK_PX, 0] > 0.0):
        return NEGATIVE
    if book[BID_PX, 0] >= book[ASK_PX, 0]:
        return INCONSISTENT
    return OK


@njit(cache=True, nogil=True, error_model="numpy")
def update_book(state: np.ndarray, book: np.ndarray, out: np.ndarray) -> int:
    """Feed one book snapshot `book[4, levels]`; update the book features in `out`."""
    if state.size < MICRO_HEAD or state[M_SIZE] != state.size or out.size < MICRO_OUT or (
            book.shape[0] != 4 or book.shape[1] < 1):
        return BAD_SHAPE
    depth = idx(state[M_DEPTH])
    code = check_book(book, depth)
    if code != OK:
        return code
    bid = book[BID_PX, 0]
    ask = book[ASK_PX, 0]
    bid_size = book[BID_SZ, 0]
    ask_size = book[ASK_SZ, 0]
    out[0] = ask - bid
    out[1] = (bid + ask) / 2.0
    out[2] = microprice_one(bid, bid_size, ask, ask_size)
    out[3] = depth_imbalance_one(book, depth)
    ofi_step(state, idx(state[M_OFI]), bid, bid_size, ask, ask_size, out, 4)
    return OK


@njit(cache=True, nogil=True, error_model="numpy")
def update_book_levels(state: np.ndarray, keys: np.ndarray, sizes: np.ndarray,
                       counts: np.ndarray, px_div: float, sz_div: float, book: np.ndarray,
                       out: np.ndarray) -> int:
    """Read the best levels of a local book (`core/book.py` arrays, integer units) into the
    float scratch `book[4, levels]` and feed it to `update_book`: one call per book event.

    A level's float is its integer units over `px_div` / `sz_div` (exact powers of ten), the
    float nearest the decimal; levels past the book's depth are 0.
    """
    if book.shape[0] != 4 or keys.shape[0] != 2 or sizes.shape != keys.shape or (
            counts.size != 2):
        return BAD_SHAPE
    width = book.shape[1]
    for row in range(2):
        n = counts[row]
        k = min(width, n)
        p = BID_PX if row == 0 else ASK_PX
        q = BID_SZ if row == 0 else ASK_SZ
        for j in range(k):
            key = keys[row, n - 1 - j]
            book[p, j] = (-key if row == 1 else key) / px_div
            book[q, j] = sizes[row, n - 1 - j] / sz_div
        for j in range(k, width):
            book[p, j] = 0.0
            book[q, j] = 0.0
    return update_book(state, book, out)


@njit(cache=True, nogil=True, error_model="numpy")
def update_trade(state: np.ndarray, out: np.ndarray, price: float, size: float,
                 side: float) -> int:
    """Feed one trade (side +1 buy, -1 sell, 0 unknown); update the trade features in `out`."""
    if state.size < MICRO_HEAD or state[M_SIZE] != state.size or out.size < MICRO_OUT:
        return BAD_SHAPE
    if not (math.isfinite(price) and math.isfinite(size) and math.isfinite(side)):
        return NOT_FINITE
    if not (price > 0.0 and size >= 0.0):
        return NEGATIVE
    if not (side == 1.0 or side == -1.0 or side == 0.0):
        return INCONSISTENT
    out[6] = trade_imbalance_step(state, idx(state[M_TFI]), size, side)
    out[7] = vpin_step(state, idx(state[M_VPIN]), size, side)
    out[8] = kyle_lambda_step(state, idx(state[M_KYLE]), price, size, side)
    return OK


def warmup() -> None:
    """Compile the fused kernels with production types."""
    layout = bar_layout()
    s = layout.new_state()
    out = layout.new_out()
    bar = np.array([1.0, 1.2, 0.9, 1.1, 10.0])
    update_bar(s, bar, out)
    update_bars(s, np.tile(bar, (3, 1)), np.empty((3, out.size)))
    replay_bars(s, np.tile(bar, (3, 1)), out)
    m = micro_layout()
    ms = m.new_state()
    mout = m.new_out()
    book = np.array([[1.0, 0.9], [2.0, 1.0], [1.1, 1.2], [1.0, 3.0]])
    update_book(ms, book, mout)
    keys = np.array([[90, 100], [-120, -110]], np.int64)
    sizes = np.array([[30, 10], [30, 12]], np.int64)
    update_book_levels(ms, keys, sizes, np.array([2, 2], np.int64), 100.0, 10.0, book, mout)
    update_trade(ms, mout, 1.05, 0.5, 1.0)
