"""Risk maths: against plain-Python definitions on real returns, incremental equal to batch."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core import reference as ref
from tests.unit.core.checks import assert_close, assert_identical, hard_moments_series
from tests.unit.core.realdata import Candles
from tradebot.core import riskmath as rm
from tradebot.core import riskmath_var as rv

returns_lists = st.lists(st.one_of(st.floats(-0.2, 0.2), st.sampled_from([0.0, 0.01, -0.01])),
                         max_size=120)


@pytest.fixture(scope="module")
def r() -> np.ndarray:
    return rm.log_returns(Candles("ETH_BTC-5m").close)[1:]


def _vector_run(update: Callable[..., object], state: np.ndarray, x: np.ndarray,
                width: int) -> np.ndarray:
    out = np.empty(width)
    rows = []
    for v in x:
        update(state, float(v), out)
        rows.append(out.copy())
    return np.array(rows).reshape(x.size, width).T


def test_returns_follow_their_definitions_both_ways() -> None:
    p = Candles("LTC_BTC-5m").close
    simple, log = rm.simple_returns(p), rm.log_returns(p)
    assert_close(simple[1:], [p[i] / p[i - 1] - 1 for i in range(1, p.size)], 1e-3, "simple")
    assert_close(log[1:], [math.log(p[i] / p[i - 1]) for i in range(1, p.size)], 1e-3, "log")
    assert_identical(_vector_run(rm.returns_update, rm.returns_state(), p, 2),
                     np.array([simple, log]), "incremental")


def test_rolling_moments_sharpe_sortino_match_statistics(r: np.ndarray) -> None:
    mean, std = rm.rolling_mean_std(r, 288, 1)
    sharpe, sortino = rm.rolling_sharpe_sortino(r, 288, 1e-5, 105_120.0)
    for i in range(287, r.size, 97):
        w = r[i - 287 : i + 1].tolist()
        assert mean[i] == pytest.approx(statistics.fmean(w), rel=1e-9, abs=1e-15)
        assert std[i] == pytest.approx(statistics.stdev(w), rel=1e-9)
        assert (sharpe[i], sortino[i]) == pytest.approx(ref.sharpe_sortino(w, 1e-5, 105_120.0),
                                                        rel=1e-9)


def check_rolling(r: np.ndarray, n: int) -> None:
    """Run every rolling risk kernel both ways over `r` and compare bit for bit."""
    assert_identical(_vector_run(rm.moments_update, rm.moments_state(n, 1), r, 2),
                     np.array(rm.rolling_mean_std(r, n, 1)), "moments")
    assert_identical(_vector_run(rm.ratios_update, rm.ratios_state(n, 0.001, 252.0), r, 2),
                     np.array(rm.rolling_sharpe_sortino(r, n, 0.001, 252.0)), "ratios")
    state = rm.moments_state(n, 1)
    kelly = np.array([rm.kelly_update(state, float(v), 0.0, 0.5) for v in r])
    assert_identical(kelly, rm.rolling_kelly(r, n, 0.0, 0.5), "kelly")
    assert_identical(_vector_run(rv.hvar_update, rv.hvar_state(n, 0.9, 3), r, 2),
                     np.array(rv.rolling_var_historical(r, n, 0.9, 3)), "historical var")
    assert_identical(_vector_run(rv.pvar_update, rv.pvar_state(n, 0.99, 2), r, 2),
                     np.array(rv.rolling_var_parametric(r, n, 0.99, 2)), "parametric var")


@settings(max_examples=50, deadline=None)
@given(returns_lists, st.integers(2, 30))
def test_rolling_risk_kernels_incremental_equal_batch(x: list[float], n: int) -> None:
    check_rolling(np.array(x, dtype=np.float64), n)


@pytest.mark.parametrize(("n", "every"), [(20, 1), (288, 7)])
def test_rolling_moments_keep_precision_where_running_sums_cancel(n: int, every: int) -> None:
    # The standard deviation itself, not the bands or z-scores built on it: those inherit
    # the rounding of a price of 1e8 next to a width of 1e-2.
    x = hard_moments_series()
    check_rolling(x, n)
    mean, std = rm.rolling_mean_std(x, n, 0)
    for i in range(n - 1, x.size, every):
        w = x[i - n + 1 : i + 1].tolist()
        assert mean[i] == pytest.approx(statistics.fmean(w), rel=1e-12), i
        assert std[i] == pytest.approx(statistics.pstdev(w), rel=1e-9), i


def test_rolling_risk_kernels_incremental_equal_batch_on_real_returns(r: np.ndarray) -> None:
    for n in (20, 288):
        check_rolling(r, n)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.5, 2.0), max_size=80))
def test_drawdown_incremental_equals_batch_and_definition(equity: list[float]) -> None:
    e = np.array(equity)
    hwm, dd, mdd = rm.drawdown(e)
    assert_identical(_vector_run(rm.drawdown_update, rm.drawdown_state(), e, 3),
                     np.array([hwm, dd, mdd]), "drawdown")
    for i in range(e.size):
        peak = max(equity[: i + 1])
        assert hwm[i] == peak and dd[i] == pytest.approx(1 - equity[i] / peak)
        assert mdd[i] == pytest.approx(max(1 - equity[j] / max(equity[: j + 1])
                                           for j in range(i + 1)))


@pytest.mark.parametrize("alpha", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("horizon", [1, 10])
def test_historical_var_es_match_hyndman_fan_and_acerbi_tasche(r: np.ndarray, alpha: float,
                                                                horizon: int) -> None:
    var, es = rv.var_historical(r, alpha, horizon)
    r_var, r_es = ref.var_es_historical(r.tolist(), alpha, horizon)
    assert (var, es) == pytest.approx((r_var, r_es), rel=1e-12)
    assert var == pytest.approx(-np.quantile(r, 1 - alpha) * math.sqrt(horizon), rel=1e-12)
    assert es >= var > 0


def test_normal_quantile_matches_the_standard_library() -> None:
    nd = statistics.NormalDist()
    for p in [1e-12, 1e-6, 0.001, 0.02425, 0.05, 0.3, 0.5, 0.8, 0.975, 0.99, 0.999999]:
        assert rv.normal_ppf(p) == pytest.approx(nd.inv_cdf(p), rel=1e-13, abs=1e-15)


def test_parametric_var_es_match_the_normal_definition(r: np.ndarray) -> None:
    var, es = rv.var_parametric(r, 0.99, 5)
    expected = ref.var_es_normal(statistics.fmean(r.tolist()), statistics.stdev(r.tolist()),
                                 0.99, 5)
    assert (var, es) == pytest.approx(expected, rel=1e-9)


def test_monte_carlo_var_is_seeded_reproducible_and_matches_the_reference(r: np.ndarray) -> None:
    first = rv.var_monte_carlo(r, 0.99, 3, 4_000, 42)
    assert rv.var_monte_carlo(r, 0.99, 3, 4_000, 42) == first
    assert rv.var_monte_carlo(r, 0.99, 3, 4_000, 43) != first
    assert first == pytest.approx(ref.var_es_monte_carlo(r.tolist(), 0.99, 3, 4_000, 42),
                                  rel=1e-9)
    # With one period and many paths it converges on the normal closed form.
    mc = rv.var_monte_carlo(r, 0.95, 1, 200_000, 7)
    assert mc == pytest.approx(rv.var_parametric(r, 0.95, 1), rel=0.02)


def test_rolling_monte_carlo_var_incremental_equals_batch(r: np.ndarray) -> None:
    x = np.ascontiguousarray(r[:60])
    assert_identical(_vector_run(rv.mcvar_update, rv.mcvar_state(20, 0.95, 2, 500, 3), x, 2),
                     np.array(rv.rolling_var_monte_carlo(x, 20, 0.95, 2, 500, 3)), "mc var")


def test_kelly_fractions_follow_kelly_and_thorp() -> None:
    assert rm.kelly_discrete(0.6, 1.0, 1.0) == pytest.approx(0.2)
    assert rm.kelly_discrete(0.5, 2.0, 0.5) == pytest.approx(0.125)
    assert math.isnan(rm.kelly_discrete(1.2, 1.0, 1.0))
    assert rm.kelly_continuous(0.01, 0.1, 0.0, 1.0) == pytest.approx(1.0)
    assert rm.kelly_continuous(0.01, 0.1, 0.002, 0.5) == pytest.approx(0.4)
    assert math.isnan(rm.kelly_continuous(0.01, 0.0, 0.0, 1.0))
