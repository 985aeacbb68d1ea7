"""Risk maths on return series: returns, rolling mean and standard deviation, Sharpe and Sortino
ratios, drawdown with its high-water mark, Kelly sizing.

Same three-part shape as `indicators.py` (batch; `_state`/`_update`; `_size`/`_init`/`_step`).
Definitions:
- simple return p[t]/p[t-1] - 1, log return ln(p[t]/p[t-1]);
- rolling standard deviation with `ddof` (1: sample, 0: population);
- Sharpe ratio (W. Sharpe, "The Sharpe ratio", J. Portfolio Management 1994):
  (mean - rf) / sample std * sqrt(periods per year), rf per period;
- Sortino ratio (Sortino and Price, "Performance measurement in a downside risk framework",
  J. Investing 1994): (mean - target) / sqrt(mean(min(r - target, 0)^2)) * sqrt(periods per
  year); NaN when there is no downside in the window;
- drawdown 1 - equity / high-water mark, maximum drawdown its running maximum;
- Kelly (J. L. Kelly, "A new interpretation of information rate", Bell System Technical Journal
  1956): a bet paying b per unit staked with win probability p: f = p - (1 - p) / b;
  continuous returns (E. Thorp, "The Kelly criterion in blackjack, sports betting and the stock
  market", 2006): f = (mean - rf) / variance; fractional Kelly scales either by `fraction`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tradebot.core.rolling import (
    NAN,
    check_period,
    idx,
    rolling_moments,
    rolling_sum_nonneg,
    window_moments,
    window_sum_nonneg,
)

MOMENTS_OUT = 2  # mean, standard deviation
RATIOS_OUT = 2  # sharpe, sortino
DRAWDOWN_OUT = 3  # high-water mark, drawdown, maximum drawdown


# --- returns: block [count, previous] --------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def simple_returns(price: np.ndarray) -> np.ndarray:
    """Return p[t] / p[t-1] - 1 (NaN first)."""
    out = np.full(price.size, NAN)
    for i in range(1, price.size):
        out[i] = price[i] / price[i - 1] - 1.0
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def log_returns(price: np.ndarray) -> np.ndarray:
    """Return ln(p[t] / p[t-1]) (NaN first)."""
    out = np.full(price.size, NAN)
    for i in range(1, price.size):
        out[i] = math.log(price[i] / price[i - 1])
    return out


def returns_state() -> np.ndarray:
    """Return a fresh state for `returns_update`."""
    return np.zeros(2)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def returns_step(s: np.ndarray, o: int, price: float, out: np.ndarray, k: int) -> None:
    """Feed a price to the block at `o`; write the simple and log return to `out[k:k+2]`."""
    prev = s[o + 1]
    s[o + 1] = price
    if s[o] == 0.0:
        s[o] = 1.0
        out[k] = NAN
        out[k + 1] = NAN
        return
    out[k] = price / prev - 1.0
    out[k + 1] = math.log(price / prev)


@njit(cache=True, nogil=True, error_model="numpy")
def returns_update(state: np.ndarray, price: float, out: np.ndarray) -> None:
    """Feed one price; write simple and log return to `out[0:2]`."""
    returns_step(state, 0, price, out, 0)


# --- rolling mean / std: block [n, ddof, count, s1, s2, pos, 1/n, peak s2, shift, ring(n)] ---


def moments_size(n: int) -> int:
    """Return the state block length of rolling moments over `n` values."""
    return 9 + n


def moments_init(s: np.ndarray, o: int, n: int, ddof: int = 1) -> None:
    """Write a fresh rolling-moments block at `s[o:]`."""
    check_period(n, ddof + 1)
    s[o : o + moments_size(n)] = 0.0
    s[o] = n
    s[o + 1] = ddof
    s[o + 6] = 1.0 / n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def moments_step(s: np.ndarray, o: int, x: float, out: np.ndarray, k: int) -> bool:
    """Feed `x` to the block at `o`; write window mean and std to `out[k:k+2]`; tell if full."""
    n = idx(s[o])
    count = s[o + 2] + 1.0
    s[o + 2] = count
    mean, m2 = window_moments(s, o + 3, o + 9, n, count, x)
    if count < n:
        out[k] = NAN
        out[k + 1] = NAN
        return False
    out[k] = mean
    out[k + 1] = math.sqrt(max(m2, 0.0) / (n - s[o + 1]))
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_mean_std(x: np.ndarray, n: int, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the rolling mean and standard deviation (with `ddof`) over `n` values."""
    if n < ddof + 1 or ddof < 0:
        raise ValueError("need 0 <= ddof < n")
    means, m2s = rolling_moments(x, n)
    return means, np.sqrt(np.maximum(m2s, 0.0) / (n - ddof))


def moments_state(n: int, ddof: int = 1) -> np.ndarray:
    """Return a fresh state for `moments_update`."""
    s = np.zeros(moments_size(n))
    moments_init(s, 0, n, ddof)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def moments_update(state: np.ndarray, x: float, out: np.ndarray) -> bool:
    """Feed one value; write rolling mean and std to `out[0:2]`; tell whether the window is full."""
    return moments_step(state, 0, x, out, 0)


# --- Sharpe and Sortino: block [rf, periods, moments(n, ddof 1), downside ring] --------------


def ratios_size(n: int) -> int:
    """Return the state block length of rolling Sharpe and Sortino ratios."""
    return 2 + moments_size(n) + 2 + n


def ratios_init(s: np.ndarray, o: int, n: int, rf: float, periods: float) -> None:
    """Write a fresh Sharpe/Sortino block at `s[o:]` (rf per period; periods per year)."""
    s[o : o + ratios_size(n)] = 0.0
    s[o] = rf
    s[o + 1] = periods
    moments_init(s, o + 2, n, 1)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _ratios(
    mean: float, std: float, downside2: float, n: int, rf: float, periods: float
) -> tuple[float, float]:
    scale = math.sqrt(periods)
    sharpe = (mean - rf) / std * scale if std > 0.0 else NAN
    sortino = (mean - rf) / math.sqrt(downside2 / n) * scale if downside2 > 0.0 else NAN
    return sharpe, sortino


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def ratios_step(s: np.ndarray, o: int, r: float, out: np.ndarray, k: int) -> None:
    """Feed a return to the block at `o`; write Sharpe and Sortino to `out[k:k+2]`."""
    n = idx(s[o + 2])
    rf = s[o]
    full = moments_step(s, o + 2, r, out, k)
    at = o + 11 + n  # after the moments block (length 9 + n)
    down = min(r - rf, 0.0)
    downside2 = window_sum_nonneg(s, at, at + 2, n, s[o + 4], down * down)
    if not full:
        return
    out[k], out[k + 1] = _ratios(out[k], out[k + 1], downside2, n, rf, s[o + 1])


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_sharpe_sortino(
    r: np.ndarray, n: int, rf: float, periods: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return rolling Sharpe and Sortino ratios over `n` returns (target = rf)."""
    if n < 2:
        raise ValueError("period must be >= 2")
    mean, std = rolling_mean_std(r, n, 1)
    down = np.minimum(r - rf, 0.0)
    downside2 = rolling_sum_nonneg(down * down, n)
    sharpe = np.full(r.size, NAN)
    sortino = np.full(r.size, NAN)
    for i in range(n - 1, r.size):
        sharpe[i], sortino[i] = _ratios(mean[i], std[i], downside2[i], n, rf, periods)
    return sharpe, sortino


def ratios_state(n: int, rf: float = 0.0, periods: float = 1.0) -> np.ndarray:
    """Return a fresh state for `ratios_update`."""
    s = np.zeros(ratios_size(n))
    ratios_init(s, 0, n, rf, periods)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def ratios_update(state: np.ndarray, r: float, out: np.ndarray) -> None:
    """Feed one return; write rolling Sharpe and Sortino to `out[0:2]`."""
    ratios_step(state, 0, r, out, 0)


# --- drawdown: block [count, high-water mark, max drawdown] ----------------------------------


def drawdown_state() -> np.ndarray:
    """Return a fresh state for `drawdown_update`."""
    return np.zeros(3)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def drawdown_step(s: np.ndarray, o: int, equity: float, out: np.ndarray, k: int) -> None:
    """Feed an equity value; write high-water mark, drawdown, max drawdown to `out[k:k+3]`."""
    if s[o] == 0.0 or equity > s[o + 1]:
        s[o + 1] = equity
    s[o] = 1.0
    dd = 1.0 - equity / s[o + 1] if s[o + 1] > 0.0 else NAN
    if dd > s[o + 2]:
        s[o + 2] = dd
    out[k] = s[o + 1]
    out[k + 1] = dd
    out[k + 2] = s[o + 2]


@njit(cache=True, nogil=True, error_model="numpy")
def drawdown(equity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return high-water mark, drawdown (fraction below it) and running maximum drawdown."""
    n = equity.size
    hwm = np.empty(n)
    dd = np.empty(n)
    mdd = np.empty(n)
    peak = -np.inf
    worst = 0.0
    for i in range(n):
        peak = max(peak, equity[i])
        hwm[i] = peak
        dd[i] = 1.0 - equity[i] / peak if peak > 0.0 else NAN
        worst = max(worst, dd[i])
        mdd[i] = worst
    return hwm, dd, mdd


@njit(cache=True, nogil=True, error_model="numpy")
def drawdown_update(state: np.ndarray, equity: float, out: np.ndarray) -> None:
    """Feed one equity value; write high-water mark, drawdown, max drawdown to `out[0:3]`."""
    drawdown_step(state, 0, equity, out, 0)


# --- Kelly -----------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def kelly_discrete(p: float, b: float, fraction: float) -> float:
    """Return `fraction` of the Kelly stake for win probability `p` and net odds `b`."""
    if not (0.0 <= p <= 1.0) or not b > 0.0:
        return NAN
    return fraction * (p - (1.0 - p) / b)


@njit(cache=True, nogil=True, error_model="numpy")
def kelly_continuous(mean: float, std: float, rf: float, fraction: float) -> float:
    """Return `fraction` of the Kelly leverage (mean - rf) / variance."""
    if not std > 0.0:
        return NAN
    return fraction * (mean - rf) / (std * std)


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_kelly(r: np.ndarray, n: int, rf: float, fraction: float) -> np.ndarray:
    """Return rolling fractional Kelly leverage over `n` returns (sample variance)."""
    mean, std = rolling_mean_std(r, n, 1)
    out = np.full(r.size, NAN)
    for i in range(n - 1, r.size):
        out[i] = kelly_continuous(mean[i], std[i], rf, fraction)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def kelly_update(state: np.ndarray, r: float, rf: float, fraction: float) -> float:
    """Feed one return to a `moments_state(n, 1)`; return rolling fractional Kelly or NaN."""
    out = np.empty(2)
    if not moments_step(state, 0, r, out, 0):
        return NAN
    return kelly_continuous(out[0], out[1], rf, fraction)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    p = np.linspace(1.0, 2.0, 40)
    r = np.diff(np.log(p))
    out = np.empty(DRAWDOWN_OUT)
    simple_returns(p)
    log_returns(p)
    returns_update(returns_state(), 1.0, out)
    rolling_mean_std(r, 5, 1)
    moments_update(moments_state(5), 0.01, out)
    rolling_sharpe_sortino(r, 5, 0.0, 365.0)
    ratios_update(ratios_state(5), 0.01, out)
    drawdown(p)
    drawdown_update(drawdown_state(), 1.0, out)
    kelly_discrete(0.6, 1.0, 0.5)
    rolling_kelly(r, 5, 0.0, 0.5)
    kelly_update(moments_state(5), 0.01, 0.0, 0.5)
