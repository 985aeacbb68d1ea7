"""Order-flow toxicity and price impact from trades: VPIN and Kyle's lambda.

Definitions and citations are in `microstructure.py`. Trades carry price, size >= 0 and the
aggressor side (+1 buy, -1 sell, 0 unknown).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    is_flat,
    m2_lost_precision,
    rolling_sum_nonneg,
    window_sum_nonneg,
)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def comoment_add(
    m: tuple[float, float, float, float], k: int, x: float, y: float
) -> tuple[float, float, float, float]:
    """Add the `k`-th pair to (mean x, mean y, sum of squared x deviations, co-moment)."""
    mx, my, m2x, cxy = m
    dx = x - mx
    mx += dx / k
    my += (y - my) / k
    return mx, my, m2x + dx * (x - mx), cxy + dx * (y - my)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def comoment_remove(
    m: tuple[float, float, float, float], k: int, x: float, y: float
) -> tuple[float, float, float, float]:
    """Remove a pair from moments over `k + 1` pairs, leaving moments over `k`."""
    mx, my, m2x, cxy = m
    nx = mx - (x - mx) / k
    ny = my - (y - my) / k
    return nx, ny, m2x - (x - nx) * (x - mx), cxy - (x - nx) * (y - my)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def comoment_two_pass(
    x: np.ndarray, xs: int, y: np.ndarray, ys: int, n: int, first: int
) -> tuple[float, float, float, float]:
    """Return moments of the pairs (x[xs+j], y[ys+j]) visiting ring slots from `first` on."""
    sx = 0.0
    sy = 0.0
    for j in range(n):
        k = (first + j) % n
        sx += x[xs + k]
        sy += y[ys + k]
    mx = sx / n
    my = sy / n
    m2x = 0.0
    cxy = 0.0
    for j in range(n):
        k = (first + j) % n
        dx = x[xs + k] - mx
        m2x += dx * dx
        cxy += dx * (y[ys + k] - my)
    return mx, my, m2x, cxy


# --- VPIN: block [V, n, buckets, buy, sell, filled, sum, pos, ring(n)] -----------------------


def vpin_size(bucket_volume: float, buckets: int) -> int:
    """Return the state block length of VPIN over `buckets` buckets."""
    return 8 + buckets


def vpin_init(s: np.ndarray, o: int, bucket_volume: float, buckets: int) -> None:
    """Write a fresh VPIN block at `s[o:]`."""
    check_period(buckets)
    if not bucket_volume > 0.0:
        raise ValueError(f"bucket volume must be > 0, got {bucket_volume}")
    s[o : o + vpin_size(bucket_volume, buckets)] = 0.0
    s[o] = bucket_volume
    s[o + 1] = buckets


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _buy_fraction(side: float) -> float:
    if side > 0.0:
        return 1.0
    if side < 0.0:
        return 0.0
    return 0.5


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def vpin_step(s: np.ndarray, o: int, size: float, side: float) -> float:
    """Feed one trade to the VPIN block at `o`; return VPIN over the last n full buckets."""
    bucket = s[o]
    n = idx(s[o + 1])
    fb = _buy_fraction(side)
    remaining = size
    while remaining > 0.0:
        room = bucket - s[o + 5]
        take = remaining if remaining < room else room
        s[o + 3] += take * fb
        s[o + 4] += take * (1.0 - fb)
        s[o + 5] += take
        remaining -= take
        if take == room:
            done = s[o + 2] + 1.0
            s[o + 2] = done
            window_sum_nonneg(s, o + 6, o + 8, n, done, abs(s[o + 3] - s[o + 4]))
            s[o + 3] = 0.0
            s[o + 4] = 0.0
            s[o + 5] = 0.0
    if s[o + 2] < n:
        return NAN
    return s[o + 6] / (n * bucket)


@njit(cache=True, nogil=True, error_model="numpy")
def _bucket_imbalances(
    size: np.ndarray, side: np.ndarray, bucket: float
) -> tuple[np.ndarray, np.ndarray]:
    # Per-bucket |buy - sell| and, per trade, how many buckets were full after it.
    imbalance = np.empty(size.size + int(np.sum(size) / bucket) + 1)
    done_after = np.empty(size.size, dtype=np.int64)
    done = 0
    buy = 0.0
    sell = 0.0
    filled = 0.0
    for i in range(size.size):
        fb = _buy_fraction(side[i])
        remaining = size[i]
        while remaining > 0.0:
            room = bucket - filled
            take = remaining if remaining < room else room
            buy += take * fb
            sell += take * (1.0 - fb)
            filled += take
            remaining -= take
            if take == room:
                imbalance[done] = abs(buy - sell)
                done += 1
                buy = 0.0
                sell = 0.0
                filled = 0.0
        done_after[i] = done
    return imbalance[:done], done_after


@njit(cache=True, nogil=True, error_model="numpy")
def vpin(size: np.ndarray, side: np.ndarray, bucket_volume: float, buckets: int) -> np.ndarray:
    """Return VPIN after each trade (NaN until `buckets` buckets are full)."""
    if buckets < 1 or not bucket_volume > 0.0:
        raise ValueError("need buckets >= 1 and bucket volume > 0")
    imbalance, done_after = _bucket_imbalances(size, side, bucket_volume)
    sums = rolling_sum_nonneg(imbalance, buckets)
    out = np.full(size.size, NAN)
    for i in range(size.size):
        if done_after[i] >= buckets:
            out[i] = sums[done_after[i] - 1] / (buckets * bucket_volume)
    return out


def vpin_state(bucket_volume: float, buckets: int) -> np.ndarray:
    """Return a fresh state for `vpin_update`."""
    s = np.zeros(vpin_size(bucket_volume, buckets))
    vpin_init(s, 0, bucket_volume, buckets)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def vpin_update(state: np.ndarray, size: float, side: float) -> float:
    """Feed one trade; return VPIN or NaN."""
    return vpin_step(state, 0, size, side)


# --- Kyle's lambda: block [w, count, prev price, mq, mdp, m2q, cqdp, pos, q ring, dp ring] ---


def kyle_lambda_size(window: int) -> int:
    """Return the state block length of Kyle's lambda over `window` trades."""
    return 8 + 2 * window


def kyle_lambda_init(s: np.ndarray, o: int, window: int) -> None:
    """Write a fresh Kyle's lambda block at `s[o:]`."""
    check_period(window, 2)
    s[o : o + kyle_lambda_size(window)] = 0.0
    s[o] = window


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _slope(m: tuple[float, float, float, float], n: int) -> float:
    mq, _, m2q, cqdp = m
    if is_flat(m2q, n, mq):
        return NAN  # every signed volume equal: the slope is undefined
    return cqdp / m2q


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _slide(
    m: tuple[float, float, float, float], w: int, q: float, dp: float, old_q: float,
    old_dp: float,
) -> tuple[float, float, float, float]:
    slid = comoment_remove(comoment_add(m, w + 1, q, dp), w, old_q, old_dp)
    return slid


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def kyle_lambda_step(s: np.ndarray, o: int, price: float, size: float, side: float) -> float:
    """Feed one trade to the block at `o`; return the rolling slope of price change on flow."""
    w = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    prev = s[o + 2]
    s[o + 2] = price
    if count == 1.0:
        return NAN
    k = int(count) - 1
    q = side * size
    dp = price - prev
    pos = idx(s[o + 7])
    old_q = s[o + 8 + pos]
    old_dp = s[o + 8 + w + pos]
    s[o + 8 + pos] = q
    s[o + 8 + w + pos] = dp
    s[o + 7] = pos + 1 if pos + 1 < w else 0
    m = (s[o + 3], s[o + 4], s[o + 5], s[o + 6])
    if k <= w:
        m = comoment_add(m, k, q, dp)
    else:
        slid = _slide(m, w, q, dp, old_q, old_dp)
        if s[o + 7] == 0.0 or m2_lost_precision(m[2], slid[2]):
            slid = comoment_two_pass(s, o + 8, s, o + 8 + w, w, idx(s[o + 7]))
        m = slid
    s[o + 3], s[o + 4], s[o + 5], s[o + 6] = m
    return _slope(m, w) if k >= w else NAN


@njit(cache=True, nogil=True, error_model="numpy")
def kyle_lambda(
    price: np.ndarray, size: np.ndarray, side: np.ndarray, window: int
) -> np.ndarray:
    """Return the OLS slope of trade-price change on signed volume over the last `window`."""
    if window < 2:
        raise ValueError("window must be >= 2")
    out = np.full(price.size, NAN)
    if price.size < 2:
        return out
    q = side[1:] * size[1:]
    dp = price[1:] - price[:-1]
    m = (0.0, 0.0, 0.0, 0.0)
    lap = 0  # (i + 1) % window, counted
    for i in range(q.size):
        lap = lap + 1 if lap + 1 < window else 0
        if i < window:
            m = comoment_add(m, i + 1, q[i], dp[i])
        else:
            slid = _slide(m, window, q[i], dp[i], q[i - window], dp[i - window])
            if lap == 0 or m2_lost_precision(m[2], slid[2]):
                slid = comoment_two_pass(q, i - window + 1, dp, i - window + 1, window, 0)
            m = slid
        if i >= window - 1:
            out[i + 1] = _slope(m, window)
    return out


def kyle_lambda_state(window: int) -> np.ndarray:
    """Return a fresh state for `kyle_lambda_update`."""
    s = np.zeros(kyle_lambda_size(window))
    kyle_lambda_init(s, 0, window)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def kyle_lambda_update(state: np.ndarray, price: float, size: float, side: float) -> float:
    """Feed one trade; return Kyle's lambda or NaN."""
    return kyle_lambda_step(state, 0, price, size, side)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    n = 8
    price = np.linspace(1.0, 1.1, n)
    size = np.ones(n)
    side = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    vpin(size, side, 2.0, 2)
    vpin_update(vpin_state(2.0, 2), 1.0, 1.0)
    kyle_lambda(price, size, side, 3)
    kyle_lambda_update(kyle_lambda_state(3), 1.0, 1.0, 1.0)
