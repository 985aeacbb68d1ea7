"""Wilder's directional movement: ADX with +DI and -DI.

Same three-part shape as `indicators.py`. Seeding follows TA-Lib (TA_ADX, TA_PLUS_DI,
TA_MINUS_DI): the first n-1 directional moves and true ranges are summed, then smoothed with
`x - x/n + new` (computed as `x (n-1)/n + new`, which moves results by an ulp or so); +DI/-DI
start at bar n, ADX (the mean of the first n DX values, then Wilder smoothing) at bar 2n-1.
Where a DX is undefined (no range, or no directional movement), ADX
holds its value as TA-Lib does; TA-Lib's epsilon "is zero" tests are exact-zero tests here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from tradebot.core.rolling import NAN, check_period, idx, true_range

ADX_OUT = 3  # adx, +DI, -DI


# --- ADX: block [n, count, prev high, prev low, prev close, +DM, -DM, TR, DX sum, adx, keep] --


def adx_size(n: int) -> int:
    """Return the state block length of ADX."""
    return 11


def adx_init(s: np.ndarray, o: int, n: int) -> None:
    """Write a fresh ADX block at `s[o:]`."""
    check_period(n, 2)
    s[o : o + 11] = 0.0
    s[o] = n
    s[o + 10] = (n - 1) / n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _directional(up: float, down: float) -> tuple[float, float]:
    # Wilder: only the larger of the two moves counts, and only if positive.
    if down > 0 and up < down:
        return 0.0, down
    if up > 0 and up > down:
        return up, 0.0
    return 0.0, 0.0


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _di_dx(pdm: float, mdm: float, tr: float) -> tuple[float, float, float]:
    # DX is NaN where undefined (no range, or no directional movement); ADX then holds.
    # DX = 100 |-DI - +DI| / (-DI + +DI) = 100 |-DM - +DM| / (-DM + +DM): TR cancels, which
    # saves a dependent division.
    if tr == 0.0:
        return 0.0, 0.0, NAN
    scale = 100.0 / tr
    total = mdm + pdm
    if total == 0.0:
        return pdm * scale, mdm * scale, NAN
    return pdm * scale, mdm * scale, 100.0 * (abs(mdm - pdm) / total)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _adx_next(adx: float, dx: float, n: int) -> float:
    if dx != dx:
        return adx
    return ((adx * (n - 1)) + dx) / n


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _smooth(x: float, keep: float, new: float) -> float:
    # Wilder's running sum x - x/n + new, with keep = (n-1)/n: a product instead of a division.
    return x * keep + new


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def adx_step(
    s: np.ndarray, o: int, high: float, low: float, close: float, out: np.ndarray, k: int
) -> None:
    """Feed one bar to the ADX block at `o`; write ADX, +DI, -DI to `out[k:k+3]`."""
    n = idx(s[o])
    count = s[o + 1] + 1.0
    s[o + 1] = count
    out[k] = NAN
    out[k + 1] = NAN
    out[k + 2] = NAN
    pdm, mdm = _directional(high - s[o + 2], s[o + 3] - low)
    tr = true_range(high, low, s[o + 4])
    s[o + 2] = high
    s[o + 3] = low
    s[o + 4] = close
    if count == 1.0:
        return
    if count <= n:
        s[o + 5] += pdm
        s[o + 6] += mdm
        s[o + 7] += tr
        return
    keep = s[o + 10]
    s[o + 5] = _smooth(s[o + 5], keep, pdm)
    s[o + 6] = _smooth(s[o + 6], keep, mdm)
    s[o + 7] = _smooth(s[o + 7], keep, tr)
    pdi, mdi, dx = _di_dx(s[o + 5], s[o + 6], s[o + 7])
    out[k + 1] = pdi
    out[k + 2] = mdi
    if count < 2 * n:
        if dx == dx:
            s[o + 8] += dx
        return
    if count == 2 * n:
        if dx == dx:
            s[o + 8] += dx
        s[o + 9] = s[o + 8] / n
    else:
        s[o + 9] = _adx_next(s[o + 9], dx, n)
    out[k] = s[o + 9]


@njit(cache=True, nogil=True, error_model="numpy")
def adx(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Wilder's ADX (from bar 2n-1) and +DI, -DI (from bar n), TA-Lib seeding."""
    if n < 2:
        raise ValueError("period must be >= 2")
    size = close.size
    out = np.full(size, NAN)
    pdi_out = np.full(size, NAN)
    mdi_out = np.full(size, NAN)
    sp = 0.0
    sm = 0.0
    st = 0.0
    dx_sum = 0.0
    value = 0.0
    keep = (n - 1) / n
    for i in range(1, size):
        pdm, mdm = _directional(high[i] - high[i - 1], low[i - 1] - low[i])
        tr = true_range(high[i], low[i], close[i - 1])
        if i < n:
            sp += pdm
            sm += mdm
            st += tr
            continue
        sp = _smooth(sp, keep, pdm)
        sm = _smooth(sm, keep, mdm)
        st = _smooth(st, keep, tr)
        pdi_out[i], mdi_out[i], dx = _di_dx(sp, sm, st)
        if i < 2 * n - 1:
            dx_sum += dx if dx == dx else 0.0
            continue
        if i == 2 * n - 1:
            value = (dx_sum + (dx if dx == dx else 0.0)) / n
        else:
            value = _adx_next(value, dx, n)
        out[i] = value
    return out, pdi_out, mdi_out


def adx_state(n: int) -> np.ndarray:
    """Return a fresh state for `adx_update`."""
    s = np.zeros(adx_size(n))
    adx_init(s, 0, n)
    return s


@njit(cache=True, nogil=True, error_model="numpy")
def adx_update(state: np.ndarray, high: float, low: float, close: float, out: np.ndarray) -> None:
    """Feed one bar; write ADX, +DI, -DI to `out[0:3]`."""
    adx_step(state, 0, high, low, close, out, 0)


def warmup() -> None:
    """Compile every kernel of this module with production types."""
    c = np.linspace(1.0, 2.0, 40)
    adx(c + 0.1, c - 0.1, c, 5)
    adx_update(adx_state(5), 1.1, 0.9, 1.0, np.empty(ADX_OUT))
