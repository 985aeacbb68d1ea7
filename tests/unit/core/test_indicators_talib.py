"""Batch indicators agree with TA-Lib on real candles, within 1e-9 relative after warm-up."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.core.checks import assert_close, first_valid
from tests.unit.core.realdata import CANDLE_FILES, Candles
from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol

talib = pytest.importorskip("talib", reason="TA-Lib (PyPI ta-lib) is a test-only dependency")


@pytest.fixture(scope="module", params=CANDLE_FILES)
def candles(request: pytest.FixtureRequest) -> Candles:
    return Candles(request.param)


def _same_start(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    assert first_valid(ours) == first_valid(theirs), what


def test_moving_averages_match_talib(candles: Candles) -> None:
    c = candles.close
    for ours, theirs, what in ((ind.sma(c, 20), talib.SMA(c, 20), "sma"),
                               (ind.ema(c, 20), talib.EMA(c, 20), "ema"),
                               (ind.wma(c, 20), talib.WMA(c, 20), "wma")):
        _same_start(ours, theirs, what)
        assert_close(ours, theirs, c.max(), what)


def test_rsi_matches_talib(candles: Candles) -> None:
    ours, theirs = ind.rsi(candles.close, 14), talib.RSI(candles.close, 14)
    _same_start(ours, theirs, "rsi")
    assert_close(ours, theirs, 100.0, "rsi")


def test_macd_matches_talib_and_emits_its_line_from_the_slow_ema_on(candles: Candles) -> None:
    c = candles.close
    line, signal, hist = trend.macd(c, 12, 26, 9)
    t_line, t_signal, t_hist = talib.MACD(c, 12, 26, 9)
    assert first_valid(line) == 25
    _same_start(signal, t_signal, "macd signal")
    _same_start(hist, t_hist, "macd hist")
    for ours, theirs, what in ((line, t_line, "line"), (signal, t_signal, "signal"),
                               (hist, t_hist, "hist")):
        assert_close(ours, theirs, c.max(), f"macd {what}")


def test_atr_matches_talib(candles: Candles) -> None:
    k = candles
    ours, theirs = trend.atr(k.high, k.low, k.close, 14), talib.ATR(k.high, k.low, k.close, 14)
    _same_start(ours, theirs, "atr")
    assert_close(ours, theirs, k.close.max(), "atr")


def test_adx_and_directional_indices_match_talib(candles: Candles) -> None:
    k = candles
    value, pdi, mdi = adx.adx(k.high, k.low, k.close, 14)
    for ours, theirs, what in ((value, talib.ADX(k.high, k.low, k.close, 14), "adx"),
                               (pdi, talib.PLUS_DI(k.high, k.low, k.close, 14), "+di"),
                               (mdi, talib.MINUS_DI(k.high, k.low, k.close, 14), "-di")):
        _same_start(ours, theirs, what)
        assert_close(ours, theirs, 100.0, what)


def test_bollinger_bands_match_talib_and_pctb_width_follow_from_them(candles: Candles) -> None:
    c = candles.close
    upper, middle, lower, pctb, width = stats.bollinger(c, 20, 2.0)
    t_upper, t_middle, t_lower = talib.BBANDS(c, 20, 2.0, 2.0, 0)
    for ours, theirs, what in ((upper, t_upper, "upper"), (middle, t_middle, "middle"),
                               (lower, t_lower, "lower")):
        _same_start(ours, theirs, what)
        assert_close(ours, theirs, c.max(), f"bb {what}")
    # TA-Lib has no %b or bandwidth: derived from its bands, they inherit the bands' ~1e-13
    # relative rounding times price / band width (~1e3 here), so compare on the 0..1 scale;
    # test_indicators_reference holds them to 1e-9 relative against exact sums.
    assert_close(pctb, (c - t_lower) / (t_upper - t_lower), 1e3, "%b from TA-Lib bands")
    assert_close(width, (t_upper - t_lower) / t_middle, 1e3, "bandwidth from TA-Lib bands")


def test_stochastic_matches_talib_where_the_window_has_a_range(candles: Candles) -> None:
    k = candles
    slow_k, pct_d = sto.stoch(k.high, k.low, k.close, 14, 3, 3)
    t_k, t_d = talib.STOCH(k.high, k.low, k.close, 14, 3, 0, 3, 0)
    assert first_valid(slow_k) == 15  # TA-Lib holds %K back until %D exists (17)
    _same_start(pct_d, t_d, "%d")
    assert_close(slow_k, t_k, 100.0, "%k")
    assert_close(pct_d, t_d, 100.0, "%d")


def test_obv_and_roc_match_talib(candles: Candles) -> None:
    k = candles
    ours = vol.obv(k.close, k.volume)
    assert_close(ours, talib.OBV(k.close, k.volume), float(np.abs(ours).max()), "obv")
    roc = stats.roc(k.close, 10)
    _same_start(roc, talib.ROC(k.close, 10), "roc")
    assert_close(roc, talib.ROC(k.close, 10), 100.0, "roc")


def test_realized_vol_matches_its_talib_composition(candles: Candles) -> None:
    # (The z-score is checked against exact sums in test_indicators_reference: composed from
    # TA-Lib's SMA and STDDEV it is itself off by more than 1e-9 where it is near zero.)
    c = candles.close
    r = np.concatenate(([np.nan], np.diff(np.log(c))))
    rv = np.sqrt(talib.SUM(np.nan_to_num(r * r), 20))
    rv[:20] = np.nan
    assert_close(stats.realized_vol(c, 20), rv, 1.0, "realized vol")
