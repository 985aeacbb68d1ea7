"""Per-event signal kernels used by the built-in strategies.

`ema_cross_update` keeps two continuous-time exponential moving averages of a price sampled
at irregular times: with time constant tau, a sample after dt seconds gets weight
1 - exp(-dt / tau) (the standard irregular-sampling EMA, e.g. Eckner 2019, "Algorithms for
unevenly spaced time series"), so the result does not depend on how often the book updates.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# State layout of ema_cross_update (float64 array).
EMA_LAST_T = 0  # seconds of the last sample
EMA_FIRST_T = 1  # seconds of the first sample
EMA_FAST = 2
EMA_SLOW = 3
EMA_SIGNAL = 4  # -1, 0, +1
EMA_STATE_SIZE = 5


def ema_cross_state() -> np.ndarray:
    """Return a fresh state array (NaN EMAs until the first sample)."""
    state = np.full(EMA_STATE_SIZE, np.nan)
    state[EMA_SIGNAL] = 0.0
    return state


@njit(cache=True, nogil=True)
def ema_cross_update(state: np.ndarray, t_s: float, price: float, fast_tau_s: float,
                     slow_tau_s: float, band: float) -> float:
    """Add a price sample at time `t_s`; return the crossover signal (+1, -1 or 0).

    The signal is +1 when fast > slow * (1 + band), -1 when fast < slow * (1 - band), else the
    previous signal (hysteresis); it is 0 until `slow_tau_s` seconds of samples were seen.
    A non-finite or non-positive price is ignored and returns the previous signal.
    """
    if not (price > 0.0 and math.isfinite(price)):
        return state[EMA_SIGNAL]
    if math.isnan(state[EMA_LAST_T]):
        state[EMA_LAST_T] = t_s
        state[EMA_FIRST_T] = t_s
        state[EMA_FAST] = price
        state[EMA_SLOW] = price
        return 0.0
    dt = t_s - state[EMA_LAST_T]
    if dt > 0.0:
        state[EMA_FAST] += (1.0 - math.exp(-dt / fast_tau_s)) * (price - state[EMA_FAST])
        state[EMA_SLOW] += (1.0 - math.exp(-dt / slow_tau_s)) * (price - state[EMA_SLOW])
        state[EMA_LAST_T] = t_s
    if t_s - state[EMA_FIRST_T] < slow_tau_s:
        return 0.0
    fast = state[EMA_FAST]
    slow = state[EMA_SLOW]
    if fast > slow * (1.0 + band):
        state[EMA_SIGNAL] = 1.0
    elif fast < slow * (1.0 - band):
        state[EMA_SIGNAL] = -1.0
    return state[EMA_SIGNAL]


def ema_cross_batch(t_s: np.ndarray, prices: np.ndarray, fast_tau_s: float, slow_tau_s: float,
                    band: float) -> np.ndarray:
    """Return the signal after each sample (the batch form, for tests and research)."""
    state = ema_cross_state()
    out = np.empty(prices.shape[0])
    for i in range(prices.shape[0]):
        out[i] = ema_cross_update(state, t_s[i], prices[i], fast_tau_s, slow_tau_s, band)
    return out


def warmup() -> None:
    """Compile the kernels with production types."""
    ema_cross_update(ema_cross_state(), 1.0, 100.0, 30.0, 120.0, 0.0002)
