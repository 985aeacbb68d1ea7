"""Every indicator's incremental form equals its batch form, bit for bit (NaN where batch is NaN).

Random series come from hypothesis (price levels from 1e-5 to 5e4, flat runs, zero volume);
real series from the candle files.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.checks import assert_identical, hard_moments_series
from tests.unit.core.realdata import CANDLE_FILES, Candles
from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol

Series = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@st.composite
def ohlcv(draw: st.DrawFn) -> Series:
    """Draw (high, low, close, volume) around a random walk, with flat runs and zero volume."""
    n = draw(st.integers(0, 120))
    level = draw(st.sampled_from([1e-5, 0.05, 1.0, 100.0, 5e4]))
    moves = draw(st.lists(st.one_of(st.just(0.0), st.floats(-0.05, 0.05)), min_size=n,
                          max_size=n))
    close = level * np.exp(np.cumsum(moves))
    spread = np.array(draw(st.lists(st.floats(0.0, 0.02), min_size=n, max_size=n)))
    volume = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1e6)), min_size=n,
                                    max_size=n)))
    high = close * (1.0 + spread)
    low = close * (1.0 - spread / 2.0)
    return high, low, close, volume


def _scalar_run(update: Callable[..., float], state: np.ndarray, *cols: np.ndarray) -> np.ndarray:
    return np.array([update(state, *(float(c[i]) for c in cols)) for i in range(cols[0].size)])


def _vector_run(update: Callable[..., None], state: np.ndarray, width: int,
                *cols: np.ndarray) -> np.ndarray:
    out = np.empty(width)
    rows = []
    for i in range(cols[0].size):
        update(state, *(float(c[i]) for c in cols), out)
        rows.append(out.copy())
    return np.array(rows).reshape(cols[0].size, width).T


def check_all(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
              n: int) -> None:
    """Run every indicator both ways over one series and compare."""
    h, lo, c, v = high, low, close, volume
    for batch, state, update in ((ind.sma, ind.sma_state, ind.sma_update),
                                 (ind.ema, ind.ema_state, ind.ema_update),
                                 (ind.wma, ind.wma_state, ind.wma_update),
                                 (ind.rsi, ind.rsi_state, ind.rsi_update),
                                 (stats.roc, stats.roc_state, stats.roc_update),
                                 (stats.realized_vol, stats.realized_vol_state,
                                  stats.realized_vol_update)):
        assert_identical(_scalar_run(update, state(n), c), batch(c, n), batch.__name__)
    assert_identical(_scalar_run(stats.zscore_update, stats.zscore_state(n + 1), c),
                     stats.zscore(c, n + 1), "zscore")
    assert_identical(_scalar_run(trend.atr_update, trend.atr_state(n), h, lo, c),
                     trend.atr(h, lo, c, n), "atr")
    assert_identical(_scalar_run(vol.obv_update, vol.obv_state(), c, v), vol.obv(c, v), "obv")
    assert_identical(_vector_run(trend.macd_update, trend.macd_state(n, n + 3, 4), 3, c),
                     np.array(trend.macd(c, n, n + 3, 4)), "macd")
    assert_identical(_vector_run(stats.bollinger_update, stats.bollinger_state(n, 2.0), 5, c),
                     np.array(stats.bollinger(c, n, 2.0)), "bollinger")
    assert_identical(_vector_run(trend.supertrend_update, trend.supertrend_state(n, 3.0), 2,
                                 h, lo, c), np.array(trend.supertrend(h, lo, c, n, 3.0)),
                     "supertrend")
    assert_identical(_vector_run(sto.stoch_update, sto.stoch_state(n, 3, 2), 2, h, lo, c),
                     np.array(sto.stoch(h, lo, c, n, 3, 2)), "stoch")
    assert_identical(_vector_run(adx.adx_update, adx.adx_state(n + 1), 3, h, lo, c),
                     np.array(adx.adx(h, lo, c, n + 1)), "adx")
    assert_identical(_vector_run(vol.vwap_update, vol.vwap_state(n), 2, h, lo, c, v),
                     np.array(vol.vwap(h, lo, c, v, n)), "vwap")


@settings(max_examples=50, deadline=None)
@given(ohlcv(), st.integers(1, 25))
def test_incremental_equals_batch_on_random_series(series: Series, n: int) -> None:
    check_all(*series, n)


@pytest.mark.parametrize("name", CANDLE_FILES)
def test_incremental_equals_batch_on_real_candles(name: str) -> None:
    k = Candles(name)
    for n in (2, 14, 20):
        check_all(k.high, k.low, k.close, k.volume, n)


def test_incremental_equals_batch_where_moments_recompute_for_precision() -> None:
    x = hard_moments_series()
    for n in (2, 20, 288):
        assert_identical(_vector_run(stats.bollinger_update, stats.bollinger_state(n, 2.0), 5, x),
                         np.array(stats.bollinger(x, n, 2.0)), f"bollinger {n}")
        assert_identical(_scalar_run(stats.zscore_update, stats.zscore_state(n), x),
                         stats.zscore(x, n), f"zscore {n}")
