"""Rolling covariance and correlation across instruments, and portfolio volatility.

Each update takes one row of `k` returns (one per instrument, same period). The window keeps
the means and the co-moment matrix C = sum (x - mean)(x - mean)^T of the last `n` rows, updated
in O(k^2) per row by adding the new row and removing the oldest (both rank-one updates written
in their symmetric form), and recomputed in two passes each time the ring wraps, so rounding
cannot build up. Covariance is C / (n - 1); correlation C_ij / sqrt(C_ii C_jj) (NaN for an
instrument whose window is flat); portfolio volatility sqrt(w^T Cov w) per period
(Markowitz, "Portfolio selection", J. Finance 1952).

State block: [k, n, count, pos, means(k), C(k*k), ring(n*k)].
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tradebot.core.rolling import NAN, check_period, idx, is_flat


def cov_size(k: int, n: int) -> int:
    """Return the state block length of a rolling covariance of `k` series over `n` rows."""
    return 4 + k + k * k + n * k


def cov_init(s: np.ndarray, o: int, k: int, n: int) -> None:
    """Write a fresh rolling covariance block at `s[o:]`."""
    check_period(k)
    check_period(n, 2)
    s[o : o + cov_size(k, n)] = 0.0
    s[o] = k
    s[o + 1] = n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add(means: np.ndarray, c: np.ndarray, x: np.ndarray, m: int) -> None:
    # Add the m-th row: C += (m-1)/m d d^T with d = x - old mean.
    k = means.size
    d = x - means
    a = (m - 1) / m
    for i in range(k):
        means[i] += d[i] / m
        for j in range(i, k):
            c[i, j] += a * d[i] * d[j]
            c[j, i] = c[i, j]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _slide(means: np.ndarray, c: np.ndarray, x: np.ndarray, y: np.ndarray, n: int) -> None:
    # Add row x to a full window of n rows, then remove its oldest row y.
    k = means.size
    d = x - means
    m1 = means + d / (n + 1)
    f = y - m1
    a = n / (n + 1)
    b = (n + 1) / n
    for i in range(k):
        means[i] = m1[i] - f[i] / n
        for j in range(i, k):
            c[i, j] += a * d[i] * d[j] - b * f[i] * f[j]
            c[j, i] = c[i, j]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _two_pass(means: np.ndarray, c: np.ndarray, rows: np.ndarray, first: int) -> None:
    # Recompute from the window, visiting rows oldest first.
    n, k = rows.shape
    means[:] = 0.0
    for r in range(n):
        means += rows[(first + r) % n]
    means /= n
    c[:, :] = 0.0
    for r in range(n):
        d = rows[(first + r) % n] - means
        for i in range(k):
            for j in range(i, k):
                c[i, j] += d[i] * d[j]
    for i in range(k):
        for j in range(i + 1, k):
            c[j, i] = c[i, j]


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _views(s: np.ndarray, o: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = idx(s[o])
    n = idx(s[o + 1])
    means = s[o + 4 : o + 4 + k]
    c = s[o + 4 + k : o + 4 + k + k * k].reshape((k, k))
    ring = s[o + 4 + k + k * k : o + 4 + k + k * k + n * k].reshape((n, k))
    return means, c, ring


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def cov_step(s: np.ndarray, o: int, x: np.ndarray) -> bool:
    """Feed one row of returns to the block at `o`; tell whether the window is full."""
    n = idx(s[o + 1])
    means, c, ring = _views(s, o)
    count = idx(s[o + 2]) + 1
    s[o + 2] = count
    pos = idx(s[o + 3])
    old = ring[pos].copy()
    ring[pos] = x
    pos = pos + 1 if pos + 1 < n else 0
    s[o + 3] = pos
    if count <= n:
        _add(means, c, x, count)
    elif pos == 0:
        _two_pass(means, c, ring, 0)
    else:
        _slide(means, c, x, old, n)
    return count >= n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _corr_into(means: np.ndarray, c: np.ndarray, n: int, out: np.ndarray) -> None:
    k = means.size
    for i in range(k):
        for j in range(k):
            if is_flat(c[i, i], n, means[i]) or is_flat(c[j, j], n, means[j]):
                out[i, j] = NAN
            elif i == j:
                out[i, j] = 1.0
            else:
                out[i, j] = c[i, j] / math.sqrt(c[i, i] * c[j, j])


@njit(cache=True, nogil=True, error_model="numpy")
def corr_read(s: np.ndarray, o: int, out: np.ndarray) -> None:
    """Write the window's correlation matrix into `out[k, k]` (NaN until full)."""
    n = idx(s[o + 1])
    means, c, _ = _views(s, o)
    if s[o + 2] < n:
        out[:, :] = NAN
        return
    _corr_into(means, c, n, out)


@njit(cache=True, nogil=True, error_model="numpy")
def cov_read(s: np.ndarray, o: int, out: np.ndarray) -> None:
    """Write the window's sample covariance matrix into `out[k, k]` (NaN until full)."""
    n = idx(s[o + 1])
    _, c, _ = _views(s, o)
    if s[o + 2] < n:
        out[:, :] = NAN
        return
    out[:, :] = c / (n - 1)


@njit(cache=True, nogil=True, error_model="numpy")
def portfolio_vol(cov: np.ndarray, weights: np.ndarray) -> float:
    """Return sqrt(w^T cov w)."""
    total = 0.0
    for i in range(weights.size):
        for j in range(weights.size):
            total += weights[i] * cov[i, j] * weights[j]
    return math.sqrt(max(total, 0.0))


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_cov_corr(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return rolling sample covariance and correlation, each (rows, k, k), over `n` rows."""
    if n < 2:
        raise ValueError("window must be >= 2")
    t, k = x.shape
    cov = np.full((t, k, k), NAN)
    corr = np.full((t, k, k), NAN)
    means = np.zeros(k)
    c = np.zeros((k, k))
    lap = 0  # (i + 1) % n, counted
    for i in range(t):
        lap = lap + 1 if lap + 1 < n else 0
        if i < n:
            _add(means, c, x[i], i + 1)
        elif lap == 0:
            _two_pass(means, c, x[i - n + 1 : i + 1], 0)
        else:
            _slide(means, c, x[i], x[i - n], n)
        if i >= n - 1:
            cov[i] = c / (n - 1)
            _corr_into(means, c, n, corr[i])
    return cov, corr


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_portfolio_vol(x: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Return rolling per-period portfolio volatility of fixed `weights` over `n` rows."""
    cov, _ = rolling_cov_corr(x, n)
    out = np.full(x.shape[0], NAN)
    for i in range(n - 1, x.shape[0]):
        out[i] = portfolio_vol(cov[i], weights)
    return out


def cov_state(k: int, n: int) -> np.ndarray:
    """Return a fresh state for `corr_update` and `portfolio_vol_update`."""
    s = np.zeros(cov_size(k, n))
    cov_init(s, 0, k, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def corr_update(state: np.ndarray, x: np.ndarray, out: np.ndarray) -> bool:
    """Feed one row of returns; write the rolling correlation matrix to `out`; tell if full."""
    full = cov_step(state, 0, x)
    corr_read(state, 0, out)
    return full


@njit(cache=True, nogil=True, error_model="numpy")
def portfolio_vol_update(state: np.ndarray, x: np.ndarray, weights: np.ndarray) -> float:
    """Feed one row of returns; return the rolling portfolio volatility or NaN."""
    if not cov_step(state, 0, x):
        return NAN
    _, c, _ = _views(state, 0)
    return portfolio_vol(c / (state[1] - 1.0), weights)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    x = np.sin(np.arange(30.0)).reshape(10, 3) * 0.01
    w = np.full(3, 1.0 / 3)
    s = cov_state(3, 4)
    out = np.empty((3, 3))
    rolling_cov_corr(x, 4)
    rolling_portfolio_vol(x, w, 4)
    corr_update(s, x[0], out)
    cov_read(s, 0, out)
    portfolio_vol_update(s, x[1], w)
    portfolio_vol(out, w)
