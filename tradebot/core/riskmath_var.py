"""Value at risk and expected shortfall (CVaR): parametric, historical and Monte Carlo.

Both are reported as positive losses, as fractions of value, at confidence `alpha` (e.g. 0.99)
over `horizon` periods of the input returns:
- historical VaR = -Q(1 - alpha) * sqrt(horizon), Q the sample quantile with linear
  interpolation between order statistics (Hyndman and Fan, "Sample quantiles in statistical
  packages", American Statistician 1996, definition 7; numpy's default);
- historical ES (Acerbi and Tasche, "On the coherence of expected shortfall", J. Banking and
  Finance 2002, eq. 3.1): with m = n (1 - alpha), the mean of the floor(m) worst returns plus
  (m - floor(m)) times the next worst, divided by m, negated, times sqrt(horizon);
- parametric (normal) VaR = z s sqrt(h) - mu h and ES = s sqrt(h) phi(z) / (1 - alpha) - mu h,
  z the standard normal alpha-quantile, mu and s the sample mean and standard deviation
  (Jorion, "Value at Risk", 3rd ed., 2007, ch. 5);
- Monte Carlo: `sims` horizon returns prod(1 + mu + s Z_j) - 1 over `horizon` standard normal
  draws Z_j, from numba's Mersenne Twister seeded with `seed` on every call (so a result is
  reproducible), then the historical estimators on them with horizon 1.
The square-root-of-time scaling of the first two assumes independent returns.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from tradebot.core.riskmath import moments_init, moments_size, moments_step, rolling_mean_std
from tradebot.core.rolling import NAN, check_period, idx, two_pass_array

VAR_OUT = 2  # value at risk, expected shortfall

_A = (-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690,
      -30.66479806614716, 2.506628277459239)
_B = (-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972,
      -13.28068155288572)
_C = (-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734,
      4.374664141464968, 2.938163982698783)
_D = (0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _tail(q: float) -> float:
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    return num / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _ppf_lower(p: float) -> float:
    # p <= 0.5: the refinement then subtracts p from a small erfc value, without cancellation.
    if p < 0.02425:
        x = _tail(math.sqrt(-2.0 * math.log(p)))
    else:
        q = p - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        x = num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


@njit(cache=True, nogil=True, error_model="numpy")
def normal_ppf(p: float) -> float:
    """Return the standard normal p-quantile (Acklam's approximation plus one Halley step)."""
    if not 0.0 < p < 1.0:
        return NAN
    # 1 - p is exact for p >= 0.5, so the upper half mirrors the lower one.
    return -_ppf_lower(1.0 - p) if p > 0.5 else _ppf_lower(p)


def _check(alpha: float, horizon: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {alpha}")
    check_period(horizon)


# --- historical ------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _needed(n: int, alpha: float) -> int:
    # Index of the highest order statistic the estimators read.
    return min(n - 1, max(math.floor((n - 1) * (1.0 - alpha)) + 1,
                          math.floor(n * (1.0 - alpha))))


@njit(cache=True, nogil=True, error_model="numpy")
def var_es_sorted(xs: np.ndarray, n: int, alpha: float, horizon: int) -> tuple[float, float]:
    """Return historical VaR and ES from the `n` smallest values of `xs`, ascending."""
    h = (n - 1) * (1.0 - alpha)
    lo = math.floor(h)
    q = xs[lo]
    if lo + 1 < n:
        q += (h - lo) * (xs[lo + 1] - xs[lo])
    m = n * (1.0 - alpha)
    whole = math.floor(m)
    tail = 0.0
    for i in range(whole):
        tail += xs[i]
    if whole < n:
        tail += (m - whole) * xs[whole]
    scale = math.sqrt(horizon)
    return -q * scale, -(tail / m) * scale


@njit(cache=True, nogil=True, error_model="numpy")
def var_historical(r: np.ndarray, alpha: float, horizon: int) -> tuple[float, float]:
    """Return historical VaR and ES of the whole sample `r`."""
    n = r.size
    if n == 0 or not 0.0 < alpha < 1.0:
        return NAN, NAN
    k = _needed(n, alpha)
    head = np.sort(np.partition(r, k)[: k + 1])
    return var_es_sorted(head, n, alpha, horizon)


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_var_historical(
    r: np.ndarray, window: int, alpha: float, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return historical VaR and ES over each window of `window` returns."""
    var = np.full(r.size, NAN)
    es = np.full(r.size, NAN)
    for i in range(window - 1, r.size):
        var[i], es[i] = var_historical(r[i - window + 1 : i + 1], alpha, horizon)
    return var, es


# block [w, alpha, horizon, count, pos, ring(w), sorted(w)]


def hvar_size(window: int) -> int:
    """Return the state block length of rolling historical VaR over `window` returns."""
    return 5 + 2 * window


def hvar_init(s: np.ndarray, o: int, window: int, alpha: float, horizon: int) -> None:
    """Write a fresh rolling historical VaR block at `s[o:]`."""
    check_period(window)
    _check(alpha, horizon)
    s[o : o + hvar_size(window)] = 0.0
    s[o : o + 3] = (window, alpha, horizon)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _upper(s: np.ndarray, base: int, n: int, x: float) -> int:
    # First index in the sorted run s[base:base+n] whose value exceeds x.
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if s[base + mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _move(s: np.ndarray, base: int, gone: int, slot: int, x: float) -> None:
    # Drop the value at `gone` and place x so the run stays sorted: one shift between the two.
    if slot > gone:
        for i in range(gone, slot - 1):
            s[base + i] = s[base + i + 1]
        s[base + slot - 1] = x
    else:
        for i in range(gone, slot, -1):
            s[base + i] = s[base + i - 1]
        s[base + slot] = x


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def hvar_step(s: np.ndarray, o: int, r: float, out: np.ndarray, k: int) -> None:
    """Feed a return to the block at `o`; write historical VaR and ES to `out[k:k+2]`."""
    w = idx(s[o])
    count = s[o + 3] + 1.0
    s[o + 3] = count
    pos = idx(s[o + 4])
    old = s[o + 5 + pos]
    s[o + 5 + pos] = r
    s[o + 4] = pos + 1 if pos + 1 < w else 0
    base = o + 5 + w
    n = int(min(count, w))
    slot = _upper(s, base, n - 1 if count <= w else n, r)
    # A new value enters at the end (as a gap) until the window is full, then `old` leaves.
    gone = n - 1 if count <= w else _upper(s, base, n, old) - 1
    _move(s, base, gone, slot, r)
    if count < w:
        out[k] = NAN
        out[k + 1] = NAN
        return
    out[k], out[k + 1] = var_es_sorted(s[base : base + w], w, s[o + 1], idx(s[o + 2]))


def hvar_state(window: int, alpha: float, horizon: int = 1) -> np.ndarray:
    """Return a fresh state for `hvar_update`."""
    s = np.zeros(hvar_size(window))
    hvar_init(s, 0, window, alpha, horizon)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def hvar_update(state: np.ndarray, r: float, out: np.ndarray) -> None:
    """Feed one return; write rolling historical VaR and ES to `out[0:2]`."""
    hvar_step(state, 0, r, out, 0)


# --- parametric ------------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def var_normal(mean: float, std: float, alpha: float, horizon: int) -> tuple[float, float]:
    """Return normal VaR and ES for per-period mean and standard deviation."""
    z = normal_ppf(alpha)
    s = std * math.sqrt(horizon)
    density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return z * s - mean * horizon, s * density / (1.0 - alpha) - mean * horizon


@njit(cache=True, nogil=True, error_model="numpy")
def var_parametric(r: np.ndarray, alpha: float, horizon: int) -> tuple[float, float]:
    """Return normal VaR and ES from the sample mean and standard deviation of `r`."""
    if r.size < 2:
        return NAN, NAN
    mean, m2 = two_pass_array(r, 0, r.size)
    return var_normal(mean, math.sqrt(m2 / (r.size - 1)), alpha, horizon)


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_var_parametric(
    r: np.ndarray, window: int, alpha: float, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return normal VaR and ES over each window of `window` returns (rolling moments)."""
    mean, std = rolling_mean_std(r, window, 1)
    var = np.full(r.size, NAN)
    es = np.full(r.size, NAN)
    for i in range(window - 1, r.size):
        var[i], es[i] = var_normal(mean[i], std[i], alpha, horizon)
    return var, es


# block [alpha, horizon, moments(w, ddof 1)]


def pvar_size(window: int) -> int:
    """Return the state block length of rolling parametric VaR."""
    return 2 + moments_size(window)


def pvar_init(s: np.ndarray, o: int, window: int, alpha: float, horizon: int) -> None:
    """Write a fresh rolling parametric VaR block at `s[o:]`."""
    _check(alpha, horizon)
    s[o] = alpha
    s[o + 1] = horizon
    moments_init(s, o + 2, window, 1)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def pvar_step(s: np.ndarray, o: int, r: float, out: np.ndarray, k: int) -> None:
    """Feed a return to the block at `o`; write normal VaR and ES to `out[k:k+2]`."""
    if moments_step(s, o + 2, r, out, k):
        out[k], out[k + 1] = var_normal(out[k], out[k + 1], s[o], idx(s[o + 1]))


def pvar_state(window: int, alpha: float, horizon: int = 1) -> np.ndarray:
    """Return a fresh state for `pvar_update`."""
    s = np.zeros(pvar_size(window))
    pvar_init(s, 0, window, alpha, horizon)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def pvar_update(state: np.ndarray, r: float, out: np.ndarray) -> None:
    """Feed one return; write rolling normal VaR and ES to `out[0:2]`."""
    pvar_step(state, 0, r, out, 0)


# --- Monte Carlo -----------------------------------------------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def var_mc_normal(
    mean: float, std: float, alpha: float, horizon: int, sims: int, seed: int
) -> tuple[float, float]:
    """Return Monte Carlo VaR and ES of compounded normal returns (seeded, reproducible)."""
    np.random.seed(seed)
    paths = np.empty(sims)
    for i in range(sims):
        growth = 1.0
        for _ in range(horizon):
            growth *= 1.0 + mean + std * np.random.standard_normal()
        paths[i] = growth - 1.0
    return var_historical(paths, alpha, 1)


@njit(cache=True, nogil=True, error_model="numpy")
def var_monte_carlo(
    r: np.ndarray, alpha: float, horizon: int, sims: int, seed: int
) -> tuple[float, float]:
    """Return Monte Carlo VaR and ES with normal returns fitted to the sample `r`."""
    if r.size < 2 or sims < 1:
        return NAN, NAN
    mean, m2 = two_pass_array(r, 0, r.size)
    return var_mc_normal(mean, math.sqrt(m2 / (r.size - 1)), alpha, horizon, sims, seed)


@njit(cache=True, nogil=True, error_model="numpy")
def rolling_var_monte_carlo(
    r: np.ndarray, window: int, alpha: float, horizon: int, sims: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return Monte Carlo VaR and ES over each window of `window` returns (rolling moments)."""
    mean, std = rolling_mean_std(r, window, 1)
    var = np.full(r.size, NAN)
    es = np.full(r.size, NAN)
    for i in range(window - 1, r.size):
        var[i], es[i] = var_mc_normal(mean[i], std[i], alpha, horizon, sims, seed)
    return var, es


# block [alpha, horizon, sims, seed, moments(w, ddof 1)]


def mcvar_size(window: int) -> int:
    """Return the state block length of rolling Monte Carlo VaR."""
    return 4 + moments_size(window)


def mcvar_init(
    s: np.ndarray, o: int, window: int, alpha: float, horizon: int, sims: int, seed: int
) -> None:
    """Write a fresh rolling Monte Carlo VaR block at `s[o:]`."""
    _check(alpha, horizon)
    check_period(sims)
    s[o : o + 4] = (alpha, horizon, sims, seed)
    moments_init(s, o + 4, window, 1)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def mcvar_step(s: np.ndarray, o: int, r: float, out: np.ndarray, k: int) -> None:
    """Feed a return to the block at `o`; write Monte Carlo VaR and ES to `out[k:k+2]`."""
    if moments_step(s, o + 4, r, out, k):
        out[k], out[k + 1] = var_mc_normal(
            out[k], out[k + 1], s[o], idx(s[o + 1]), idx(s[o + 2]), idx(s[o + 3])
        )


def mcvar_state(window: int, alpha: float, horizon: int, sims: int, seed: int) -> np.ndarray:
    """Return a fresh state for `mcvar_update`."""
    s = np.zeros(mcvar_size(window))
    mcvar_init(s, 0, window, alpha, horizon, sims, seed)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def mcvar_update(state: np.ndarray, r: float, out: np.ndarray) -> None:
    """Feed one return; write rolling Monte Carlo VaR and ES to `out[0:2]`."""
    mcvar_step(state, 0, r, out, 0)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    r = np.sin(np.arange(40.0)) * 0.01
    out = np.empty(VAR_OUT)
    normal_ppf(0.99)
    var_historical(r, 0.95, 1)
    rolling_var_historical(r, 10, 0.95, 1)
    hvar_update(hvar_state(10, 0.95, 1), 0.01, out)
    var_parametric(r, 0.95, 1)
    pvar_update(pvar_state(10, 0.95, 1), 0.01, out)
    rolling_var_parametric(r, 10, 0.95, 1)
    rolling_var_monte_carlo(r, 10, 0.95, 2, 50, 7)
    var_monte_carlo(r, 0.95, 2, 100, 7)
    mcvar_update(mcvar_state(10, 0.95, 2, 100, 7), 0.01, out)
