"""Rolling covariance, correlation and portfolio volatility across instruments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.unit.core import reference as ref
from tests.unit.core.checks import assert_identical
from tests.unit.core.realdata import Candles
from tradebot.core import riskmath_corr as rc


@pytest.fixture(scope="module")
def returns() -> np.ndarray:
    """Aligned 5-minute log returns of ETH/BTC, LTC/BTC and ADA/BTC (one column each)."""
    sets = [Candles(n) for n in ("ETH_BTC-5m", "LTC_BTC-5m", "ADA_BTC-5m")]
    common = set(sets[0].ts.tolist()).intersection(*(set(k.ts.tolist()) for k in sets[1:]))
    cols = []
    for k in sets:
        keep = np.isin(k.ts, sorted(common))
        cols.append(np.diff(np.log(k.close[keep])))
    return np.ascontiguousarray(np.column_stack(cols))


def test_rolling_correlation_and_covariance_match_statistics(returns: np.ndarray) -> None:
    cov, corr = rc.rolling_cov_corr(returns, 288)
    assert np.isnan(corr[:287]).all()
    for i in range(287, returns.shape[0], 211):
        window = returns[i - 287 : i + 1].tolist()
        assert corr[i] == pytest.approx(np.array(ref.correlation_matrix(window)), rel=1e-9)
        assert cov[i] == pytest.approx(np.array(ref.covariance_matrix(window)), rel=1e-9)
        w = np.array([0.5, 0.3, 0.2])
        expected = math.sqrt(sum(w[a] * c * w[b] for a, row in enumerate(ref.covariance_matrix(
            window)) for b, c in enumerate(row)))
        assert rc.portfolio_vol(cov[i], w) == pytest.approx(expected, rel=1e-9)


def check_incremental(x: np.ndarray, n: int) -> None:
    """Feed the rows of `x` one at a time and compare with the batch kernels bit for bit."""
    k = x.shape[1]
    cov, corr = rc.rolling_cov_corr(x, n)
    state = rc.cov_state(k, n)
    out_corr = np.empty((k, k))
    out_cov = np.empty((k, k))
    weights = np.linspace(1.0, 2.0, k) / k
    vol = rc.rolling_portfolio_vol(x, weights, n)
    vol_state = rc.cov_state(k, n)
    for i in range(x.shape[0]):
        rc.corr_update(state, x[i], out_corr)
        rc.cov_read(state, 0, out_cov)
        assert_identical(out_corr, corr[i], f"corr row {i}")
        assert_identical(out_cov, cov[i], f"cov row {i}")
        assert_identical(np.array(rc.portfolio_vol_update(vol_state, x[i], weights)),
                         np.array(vol[i]), "vol")


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 60), st.integers(1, 6)),
              elements=st.one_of(st.floats(-0.1, 0.1), st.just(0.0))),
       st.integers(2, 12))
def test_incremental_correlation_equals_batch(x: np.ndarray, n: int) -> None:
    check_incremental(np.ascontiguousarray(x), n)


def test_incremental_correlation_equals_batch_on_real_returns(returns: np.ndarray) -> None:
    check_incremental(returns[:2000], 288)


def test_a_flat_instrument_has_no_correlation() -> None:
    x = np.column_stack((np.linspace(0.0, 1.0, 30), np.full(30, 0.01)))
    _, corr = rc.rolling_cov_corr(np.ascontiguousarray(x), 10)
    assert corr[-1, 0, 0] == 1.0
    assert np.isnan(corr[-1, 1, :]).all() and np.isnan(corr[-1, :, 1]).all()
