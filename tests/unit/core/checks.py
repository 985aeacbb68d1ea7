"""Assertions and inputs shared by the core kernel tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RTOL = 1e-9  # the bar: equal within 1e-9 relative after warm-up


def assert_identical(a: np.ndarray, b: np.ndarray, what: str = "") -> None:
    """Assert equal shapes, NaN in the same places, and bit-equal values elsewhere."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, what
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert np.array_equal(nan_a, nan_b), f"{what}: NaN at {np.flatnonzero(nan_a != nan_b)[:5]}"
    diff = np.flatnonzero(a[~nan_a] != b[~nan_b])
    assert diff.size == 0, f"{what}: {diff.size} values differ, first {a[~nan_a][diff[:3]]}"


def first_valid(x: np.ndarray) -> int:
    """Return the index of the first non-NaN value (len(x) if none)."""
    ok = np.flatnonzero(~np.isnan(x))
    return int(ok[0]) if ok.size else len(x)


def assert_close(ours: np.ndarray | Sequence[float], ref: np.ndarray | Sequence[float],
                 scale: float, what: str = "", rtol: float = RTOL) -> None:
    """Assert `ours` equals `ref` within `rtol` relative wherever `ref` is defined.

    `scale` is the magnitude of the indicator's natural range (the price level for
    price-like outputs, 100 for oscillators): values that are zero up to rounding (a MACD
    crossing zero, a %K of a flat run) are compared to 1e-12 of it instead.
    """
    o = np.asarray(ours, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    assert o.shape == r.shape, what
    defined = ~np.isnan(r)
    assert defined.any(), f"{what}: reference never defined"
    assert not np.isnan(o[defined]).any(), f"{what}: NaN where the reference is defined"
    err = np.abs(o[defined] - r[defined])
    bound = rtol * np.abs(r[defined]) + 1e-12 * scale
    bad = np.flatnonzero(err > bound)
    assert bad.size == 0, (
        f"{what}: {bad.size} values off, worst relative {np.max(err / np.abs(r[defined]))}, "
        f"first at {np.flatnonzero(defined)[bad[0]]}: {o[defined][bad[0]]} vs {r[defined][bad[0]]}"
    )


def hard_moments_series() -> np.ndarray:
    """Return about 2,800 values that strain rolling moments: a level of 1e8 moving by 1e-2,
    volatility switching by up to seven orders of magnitude, spikes leaving quiet windows and
    a steep trend with almost no noise (long enough for periodic recomputes too)."""
    rng = np.random.default_rng(7)
    far = 1e8 + rng.normal(0.0, 1e-2, 600)
    scale = np.repeat(10.0 ** rng.integers(-6, 2, 12), 50)
    regimes = 100.0 + np.cumsum(rng.normal(0.0, 1.0, 600) * scale)
    spikes = 100.0 + rng.normal(0.0, 1e-6, 800)
    spikes[::100] += 50.0
    trend = 1e6 + np.arange(800.0) + rng.normal(0.0, 1e-6, 800)
    return np.concatenate((far, regimes, spikes, trend))
