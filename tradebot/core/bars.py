"""Bars from trades: time bars, volume bars and dollar (notional) bars.

A trade is (ts ns int64, price, size, side) with side +1 for a buy aggressor, -1 for a sell
aggressor and 0 when unknown (counted in volume, in neither buy nor sell volume).
A bar is two int64 times and nine float64 values, in the column order of `FIELDS`:
open, high, low, close, volume, vwap = sum(price * size) / volume, count, buy and sell volume.

- Time bars cover [start, start + interval) with start a multiple of the interval since the
  epoch; times are (start, start + interval). Intervals without trades produce no bar.
- Volume (dollar) bars close on the trade that brings their volume (price * size) to the
  threshold or beyond; trades are not split. Times are (first trade ts, last trade ts)
  (Lopez de Prado, "Advances in Financial Machine Learning", 2018, sec. 2.3.1).

Batch functions return every bar, the last one possibly still open. The incremental state is
a float64 array and an int64 array; `bar_update` feeds one trade and returns EMITTED when a bar
was completed, which it leaves in the emitted slots (`emitted_bar` reads them); `bar_flush`
closes a time bar whose interval has passed (or any bar, with `force`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

FIELDS = ("open", "high", "low", "close", "volume", "vwap", "count", "buy_volume", "sell_volume")
TIME, VOLUME, DOLLAR = 0, 1, 2
NOTHING, EMITTED, REJECTED = 0, 1, -1

# float state: [kind, threshold, has bar, open, high, low, close, volume, pv, count, buy, sell,
#               emitted values(9)]; int state: [interval, start, first ts, last ts, emitted
#               open time, emitted close time]
_F_ACC = 3
_F_OUT = 12
_F_SIZE = _F_OUT + len(FIELDS)
_I_SIZE = 6


def _new_state(kind: int, threshold: float, interval: int) -> tuple[np.ndarray, np.ndarray]:
    fs = np.zeros(_F_SIZE)
    fs[0] = kind
    fs[1] = threshold
    fs[_F_OUT:] = math.nan
    ist = np.zeros(_I_SIZE, dtype=np.int64)
    ist[0] = interval
    return fs, ist


def time_bar_state(interval_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """Return fresh (float, int) states for time bars of `interval_ns` nanoseconds."""
    if interval_ns < 1:
        raise ValueError(f"interval must be >= 1 ns, got {interval_ns}")
    return _new_state(TIME, 0.0, interval_ns)


def volume_bar_state(volume: float) -> tuple[np.ndarray, np.ndarray]:
    """Return fresh (float, int) states for bars of `volume` base units."""
    if not volume > 0.0:
        raise ValueError(f"volume threshold must be > 0, got {volume}")
    return _new_state(VOLUME, volume, 0)


def dollar_bar_state(notional: float) -> tuple[np.ndarray, np.ndarray]:
    """Return fresh (float, int) states for bars of `notional` quote units."""
    if not notional > 0.0:
        raise ValueError(f"notional threshold must be > 0, got {notional}")
    return _new_state(DOLLAR, notional, 0)


def emitted_bar(fs: np.ndarray, ist: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Return (open time, close time, values) of the last emitted bar (values is a view)."""
    return int(ist[4]), int(ist[5]), fs[_F_OUT:_F_SIZE]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _start_bar(fs: np.ndarray, price: float) -> None:
    fs[2] = 1.0
    fs[_F_ACC] = price
    fs[_F_ACC + 1] = price
    fs[_F_ACC + 2] = price
    for j in range(_F_ACC + 3, _F_ACC + 9):
        fs[j] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add_trade(fs: np.ndarray, price: float, size: float, side: float) -> None:
    fs[_F_ACC + 1] = max(fs[_F_ACC + 1], price)
    fs[_F_ACC + 2] = min(fs[_F_ACC + 2], price)
    fs[_F_ACC + 3] = price
    fs[_F_ACC + 4] += size
    fs[_F_ACC + 5] += price * size
    fs[_F_ACC + 6] += 1.0
    if side > 0.0:
        fs[_F_ACC + 7] += size
    elif side < 0.0:
        fs[_F_ACC + 8] += size


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _emit(fs: np.ndarray, ist: np.ndarray, t_open: int, t_close: int) -> None:
    a = _F_ACC
    volume = fs[a + 4]
    fs[_F_OUT : _F_OUT + 5] = fs[a : a + 5]
    fs[_F_OUT + 5] = fs[a + 5] / volume if volume > 0.0 else math.nan
    fs[_F_OUT + 6 : _F_OUT + 9] = fs[a + 6 : a + 9]
    ist[4] = t_open
    ist[5] = t_close
    fs[2] = 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _valid(price: float, size: float, side: float) -> bool:
    return math.isfinite(price) and price > 0.0 and math.isfinite(size) and size >= 0.0 and (
        side == 1.0 or side == -1.0 or side == 0.0
    )


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _roll_time(fs: np.ndarray, ist: np.ndarray, ts: int) -> int:
    # A trade in a later interval closes the open bar.
    if fs[2] != 0.0 and (ts // ist[0]) * ist[0] != ist[1]:
        _emit(fs, ist, ist[1], ist[1] + ist[0])
        return EMITTED
    return NOTHING


@njit(cache=True, nogil=True, error_model="numpy")
def bar_update(fs: np.ndarray, ist: np.ndarray, ts: int, price: float, size: float,
               side: float) -> int:
    """Feed one trade; return EMITTED if it completed a bar, NOTHING, or REJECTED.

    Rejected, with the state untouched: a non-finite or non-positive price, a negative or
    non-finite size, a side other than -1, 0, 1, or a time before the last accepted one (or,
    after a flush, before the end of the flushed interval).
    """
    if not _valid(price, size, side) or ts < ist[3]:
        return REJECTED
    result = _roll_time(fs, ist, ts) if fs[0] == TIME else NOTHING
    if fs[2] == 0.0:
        _start_bar(fs, price)
        ist[1] = (ts // ist[0]) * ist[0] if fs[0] == TIME else 0
        ist[2] = ts
    _add_trade(fs, price, size, side)
    ist[3] = ts
    if fs[0] != TIME:
        reached = fs[_F_ACC + 4] if fs[0] == VOLUME else fs[_F_ACC + 5]
        if reached >= fs[1]:
            _emit(fs, ist, ist[2], ts)
            return EMITTED
    return result


@njit(cache=True, nogil=True, error_model="numpy")
def bar_flush(fs: np.ndarray, ist: np.ndarray, now_ns: int, force: bool) -> int:
    """Close the open bar if its interval has passed (time bars) or if `force`; tell EMITTED."""
    if fs[2] == 0.0:
        return NOTHING
    if fs[0] == TIME:
        end = ist[1] + ist[0]
        if now_ns < end and not force:
            return NOTHING
        _emit(fs, ist, ist[1], end)
        ist[3] = max(ist[3], end)
        return EMITTED
    if not force:
        return NOTHING
    _emit(fs, ist, ist[2], ist[3])
    return EMITTED


# --- batch ------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def _accepted(ts: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray) -> np.ndarray:
    # The trades `bar_update` would accept, in order.
    keep = np.empty(ts.size, dtype=np.int64)
    m = 0
    last = 0
    for i in range(ts.size):
        if _valid(price[i], size[i], side[i]) and ts[i] >= last:
            keep[m] = i
            m += 1
            last = ts[i]
    return keep[:m]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _write_bar(
    rows: np.ndarray, a: int, b: int, price: np.ndarray, size: np.ndarray, side: np.ndarray,
    out: np.ndarray,
) -> None:
    # Bar from trades rows[a:b], accumulated in the order `bar_update` uses.
    first = rows[a]
    high = price[first]
    low = price[first]
    volume = 0.0
    pv = 0.0
    buy = 0.0
    sell = 0.0
    for r in range(a, b):
        i = rows[r]
        high = max(high, price[i])
        low = min(low, price[i])
        volume += size[i]
        pv += price[i] * size[i]
        if side[i] > 0.0:
            buy += size[i]
        elif side[i] < 0.0:
            sell += size[i]
    out[0] = price[first]
    out[1] = high
    out[2] = low
    out[3] = price[rows[b - 1]]
    out[4] = volume
    out[5] = pv / volume if volume > 0.0 else math.nan
    out[6] = b - a
    out[7] = buy
    out[8] = sell


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bar_end(
    rows: np.ndarray, a: int, ts: np.ndarray, price: np.ndarray, size: np.ndarray, kind: int,
    threshold: float, interval: int,
) -> int:
    # One past the last trade of the bar that starts at rows[a].
    if kind == TIME:
        start = (ts[rows[a]] // interval) * interval
        b = a + 1
        while b < rows.size and ts[rows[b]] < start + interval:
            b += 1
        return b
    reached = 0.0
    for b in range(a, rows.size):
        i = rows[b]
        reached += size[i] if kind == VOLUME else price[i] * size[i]
        if reached >= threshold:
            return b + 1
    return rows.size


@njit(cache=True, nogil=True, error_model="numpy")
def _bars(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray, kind: int,
    threshold: float, interval: int,
) -> tuple[np.ndarray, np.ndarray]:
    rows = _accepted(ts, price, size, side)
    times = np.empty((rows.size, 2), dtype=np.int64)
    values = np.empty((rows.size, len(FIELDS)))
    m = 0
    a = 0
    while a < rows.size:
        b = _bar_end(rows, a, ts, price, size, kind, threshold, interval)
        _write_bar(rows, a, b, price, size, side, values[m])
        if kind == TIME:
            times[m, 0] = (ts[rows[a]] // interval) * interval
            times[m, 1] = times[m, 0] + interval
        else:
            times[m, 0] = ts[rows[a]]
            times[m, 1] = ts[rows[b - 1]]
        m += 1
        a = b
    return times[:m], values[:m]


@njit(cache=True, nogil=True, error_model="numpy")
def time_bars(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray, interval_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (times[m, 2] int64, values[m, 9]) time bars of `interval_ns` from trades."""
    if interval_ns < 1:
        raise ValueError("interval must be >= 1 ns")
    return _bars(ts, price, size, side, TIME, 0.0, interval_ns)


@njit(cache=True, nogil=True, error_model="numpy")
def volume_bars(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray, volume: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (times, values) bars that each close once `volume` has traded."""
    if not volume > 0.0:
        raise ValueError("volume threshold must be > 0")
    return _bars(ts, price, size, side, VOLUME, volume, 1)


@njit(cache=True, nogil=True, error_model="numpy")
def dollar_bars(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, side: np.ndarray, notional: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return (times, values) bars that each close once `notional` (price * size) has traded."""
    if not notional > 0.0:
        raise ValueError("notional threshold must be > 0")
    return _bars(ts, price, size, side, DOLLAR, notional, 1)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    ts = np.array([0, 1_000, 2_000_000_000], dtype=np.int64)
    price = np.array([1.0, 2.0, 1.5])
    size = np.array([1.0, 2.0, 3.0])
    side = np.array([1.0, -1.0, 0.0])
    time_bars(ts, price, size, side, 1_000_000_000)
    volume_bars(ts, price, size, side, 2.0)
    dollar_bars(ts, price, size, side, 2.0)
    for fs, ist in (time_bar_state(1_000_000_000), volume_bar_state(2.0)):
        for i in range(ts.size):
            bar_update(fs, ist, int(ts[i]), float(price[i]), float(size[i]), float(side[i]))
        bar_flush(fs, ist, 3_000_000_000, True)
