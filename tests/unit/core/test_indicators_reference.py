"""Indicators TA-Lib lacks agree with plain-Python references on real candles (1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.core import reference as ref
from tests.unit.core.checks import assert_close, first_valid
from tests.unit.core.realdata import CANDLE_FILES, Candles
from tradebot.core import indicators as ind
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol


@pytest.fixture(scope="module", params=CANDLE_FILES)
def candles(request: pytest.FixtureRequest) -> Candles:
    return Candles(request.param)


def test_supertrend_matches_the_tradingview_definition(candles: Candles) -> None:
    k = candles
    line, direction = trend.supertrend(k.high, k.low, k.close, 10, 3.0)
    r_line, r_dir = ref.supertrend(list(k.high), list(k.low), list(k.close), 10, 3.0)
    assert first_valid(line) == 10
    assert_close(line, r_line, k.close.max(), "supertrend")
    assert np.array_equal(direction[10:], np.array(r_dir[10:])), "direction"
    assert {-1.0, 1.0} <= set(direction[10:])  # the real data has both trends


def test_bollinger_percent_b_and_bandwidth_match_exact_sums(candles: Candles) -> None:
    c = candles.close
    ours = stats.bollinger(c, 20, 2.0)
    exact = np.array(ref.bollinger(list(c), 20, 2.0)).T
    for j, what in enumerate(("upper", "middle", "lower", "%b", "bandwidth")):
        assert_close(ours[j], exact[j], c.max() if j < 3 else 1.0, what)


def test_zscore_matches_exact_sums(candles: Candles) -> None:
    assert_close(stats.zscore(candles.close, 20), ref.zscore(list(candles.close), 20), 1.0, "z")


def test_realized_vol_matches_the_sum_of_squared_log_returns(candles: Candles) -> None:
    c = candles.close
    assert_close(stats.realized_vol(c, 20), ref.realized_vol(list(c), 20), 1.0, "rv")


def test_rolling_vwap_and_deviation_match_the_definition(candles: Candles) -> None:
    k = candles
    value, dev = vol.vwap(k.high, k.low, k.close, k.volume, 20)
    r_value, r_dev = ref.rolling_vwap(list(k.high), list(k.low), list(k.close), list(k.volume), 20)
    assert_close(value, r_value, k.close.max(), "vwap")
    assert_close(dev, r_dev, 1.0, "vwap deviation")


def test_flat_windows_read_as_flat_not_as_rounding_noise() -> None:
    # A spike then a long flat run: the bands collapse onto the price, %b and z are undefined,
    # the stochastic sits at 50 and RSI at 50 (neither overbought nor oversold).
    x = np.concatenate((np.full(30, 0.1), [0.13], np.full(60, 0.1)))
    upper, middle, lower, pctb, width = stats.bollinger(x, 20, 2.0)
    assert np.array_equal(upper[-20:], middle[-20:]) and np.array_equal(lower[-20:], middle[-20:])
    assert np.isnan(pctb[-20:]).all() and (width[-20:] == 0.0).all()
    assert np.isnan(stats.zscore(x, 20)[-20:]).all()
    assert (stats.realized_vol(x, 20)[-20:] == 0.0).all()
    slow_k, pct_d = sto.stoch(x, x, x, 14, 3, 3)
    assert (slow_k[-20:] == 50.0).all() and (pct_d[-20:] == 50.0).all()
    assert (ind.rsi(np.full(40, 2.0), 14)[14:] == 50.0).all()
