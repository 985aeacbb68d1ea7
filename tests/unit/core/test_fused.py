"""The fused kernels compute exactly what the separate batch kernels compute, in one call."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.checks import assert_identical, first_valid
from tests.unit.core.realdata import CANDLE_FILES, Candles
from tests.unit.core.test_indicators_incremental import Series, ohlcv
from tradebot.core import fused
from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol
from tradebot.core.fused_layout import (
    BAR_OUT,
    MICRO_OUT,
    BarFeatureParams,
    bar_layout,
    micro_layout,
)


def batch_features(p: BarFeatureParams, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                   v: np.ndarray) -> list[np.ndarray]:
    """Return every bar feature from the batch kernels, in the layout's order."""
    return [
        ind.sma(c, p.sma), ind.ema(c, p.ema), ind.wma(c, p.wma), ind.rsi(c, p.rsi),
        *trend.macd(c, *p.macd), trend.atr(h, lo, c, p.atr), *stats.bollinger(c, *p.bollinger),
        *trend.supertrend(h, lo, c, *p.supertrend), *sto.stoch(h, lo, c, *p.stoch),
        *adx.adx(h, lo, c, p.adx), vol.obv(c, v), *vol.vwap(h, lo, c, v, p.vwap),
        stats.realized_vol(c, p.realized_vol), stats.zscore(c, p.zscore), stats.roc(c, p.roc),
    ]


def fused_features(p: BarFeatureParams, ohlcv_rows: np.ndarray) -> np.ndarray:
    layout = bar_layout(p)
    out = np.full((ohlcv_rows.shape[0], len(layout.names)), np.nan)
    assert fused.update_bars(layout.new_state(), ohlcv_rows, out) == 0
    return out


def _rows(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.column_stack((c, h, lo, c, v)))


@pytest.mark.parametrize("name", CANDLE_FILES)
def test_fused_bar_kernel_equals_the_batch_kernels_on_real_candles(name: str) -> None:
    k = Candles(name)
    p = BarFeatureParams()
    out = fused_features(p, k.ohlcv)
    for j, (feature, expected) in enumerate(zip(bar_layout(p).names,
                                                batch_features(p, k.high, k.low, k.close,
                                                               k.volume), strict=True)):
        assert_identical(out[:, j], expected, feature)


@settings(max_examples=50, deadline=None)
@given(ohlcv(), st.sampled_from([BarFeatureParams(),
                                 BarFeatureParams(sma=3, ema=2, rsi=5, macd=(3, 7, 2),
                                                  bollinger=(5, 1.5), zscore=8, stoch=(5, 1, 2),
                                                  adx=2, vwap=1, realized_vol=1, roc=1)]))
def test_fused_bar_kernel_equals_the_batch_kernels_on_random_series(series: Series,
                                                                    p: BarFeatureParams) -> None:
    h, lo, c, v = series
    out = fused_features(p, _rows(h, lo, c, v))
    for j, expected in enumerate(batch_features(p, h, lo, c, v)):
        assert_identical(out[:, j], expected, bar_layout(p).names[j])


def test_layout_names_follow_the_features_command_convention() -> None:
    names = bar_layout().names
    for expected in ("rsi_14", "ema_20", "macd_12_26_9", "macd_signal_12_26_9",
                     "macd_hist_12_26_9", "atr_14", "bb_upper_20_2", "bb_lower_20_2",
                     "supertrend_10_3", "adx_14"):
        assert expected in names
    assert len(set(names)) == len(names)
    assert len(names) == BAR_OUT and len(micro_layout().names) == MICRO_OUT


def test_a_state_or_array_of_the_wrong_length_is_refused_untouched() -> None:
    layout = bar_layout()
    state, out = layout.new_state(), layout.new_out()
    bar = np.array([1.0, 1.2, 0.9, 1.1, 10.0])
    other = bar_layout(BarFeatureParams(sma=30)).new_state()
    for args in ((state[:-1].copy(), bar, out), (state, bar[:4].copy(), out),
                 (state, bar, out[:-1].copy()), (other[:state.size].copy(), bar, out)):
        before = [a.copy() for a in args]
        assert fused.update_bar(*args) == fused.BAD_SHAPE
        for a, b in zip(args, before, strict=True):
            assert_identical(a, b)
    micro = micro_layout()
    ms, mout = micro.new_state(), micro.new_out()
    assert fused.update_book(ms, np.ones((3, 5)), mout) == fused.BAD_SHAPE
    assert fused.update_trade(ms[:-1].copy(), mout, 1.0, 1.0, 1.0) == fused.BAD_SHAPE
    assert fused.update_trade(ms, mout[:-1].copy(), 1.0, 1.0, 1.0) == fused.BAD_SHAPE


def test_declared_warmup_is_when_each_feature_first_appears() -> None:
    k = Candles(CANDLE_FILES[0])
    layout = bar_layout()
    out = fused_features(BarFeatureParams(), k.ohlcv)
    for j, name in enumerate(layout.names):
        assert first_valid(out[:, j]) + 1 == layout.warmup[j], name


@pytest.mark.parametrize(("bar", "code"), [
    ([np.nan, 1.2, 0.9, 1.1, 10.0], fused.NOT_FINITE),
    ([1.0, np.inf, 0.9, 1.1, 10.0], fused.NOT_FINITE),
    ([1.0, 1.2, 0.9, 1.1, -1.0], fused.NEGATIVE),
    ([1.0, 1.2, 0.0, 1.1, 10.0], fused.NEGATIVE),
    ([1.0, 0.8, 0.9, 0.85, 10.0], fused.INCONSISTENT),
    ([1.3, 1.2, 0.9, 1.1, 10.0], fused.INCONSISTENT),
    ([1.0, 1.2, 0.9, 0.5, 10.0], fused.INCONSISTENT),
])
def test_a_rejected_bar_leaves_state_and_features_untouched(bar: list[float], code: int) -> None:
    k = Candles(CANDLE_FILES[0])
    layout = bar_layout()
    state = layout.new_state()
    out = layout.new_out()
    fused.replay_bars(state, k.ohlcv[:100], out)
    before_state, before_out = state.copy(), out.copy()
    assert fused.update_bar(state, np.array(bar), out) == code
    assert_identical(state, before_state, "state")
    assert_identical(out, before_out, "out")


def test_a_copied_state_carries_on_exactly_like_the_original() -> None:
    k = Candles(CANDLE_FILES[1])
    layout = bar_layout()
    state = layout.new_state()
    out = layout.new_out()
    fused.replay_bars(state, k.ohlcv[:1000], out)
    copy, copy_out = state.copy(), layout.new_out()
    for row in k.ohlcv[1000:1200]:
        fused.update_bar(state, row, out)
        fused.update_bar(copy, row, copy_out)
        assert_identical(copy_out, out)


def test_features_are_nan_until_warm_and_finite_after_on_real_candles() -> None:
    k = Candles(CANDLE_FILES[2])
    layout = bar_layout()
    out = fused_features(BarFeatureParams(), k.ohlcv)
    for j, name in enumerate(layout.names):
        assert np.isnan(out[: layout.warmup[j] - 1, j]).all(), name
        assert np.isfinite(out[layout.warmup[j] - 1 :, j]).all(), name


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 14), st.integers(0, 14))
def test_reading_the_book_arrays_in_the_kernel_equals_copying_levels_first(
        seed: int, n_bids: int, n_asks: int) -> None:
    from tradebot.core import book as kbook

    rng = np.random.default_rng(seed)
    keys, sizes, counts, top = kbook.new_book(64)
    bids = 100_000 - rng.choice(500, n_bids, replace=False)
    asks = 100_001 + rng.choice(500, n_asks, replace=False)
    rows = [(1, int(p), int(rng.integers(1, 10**6))) for p in bids] + \
        [(-1, int(p), int(rng.integers(1, 10**6))) for p in asks]
    levels = np.array(rows, np.int64).reshape(-1, 3)
    assert kbook.book_apply(keys, sizes, counts, levels, len(rows), top, 64) == kbook.OK
    layout = micro_layout()
    depth = int(layout.template[0])
    px, sz = 10.0, 1000.0
    # The former path: copy each side's levels out, then divide in numpy.
    expected_book = np.zeros((4, depth))
    scratch = np.zeros((depth, 2), np.int64)
    for row, (p, s) in ((0, (0, 1)), (1, (2, 3))):
        k = kbook.book_levels(keys, sizes, counts, row, depth, scratch)
        expected_book[p, :k] = scratch[:k, 0] / px
        expected_book[s, :k] = scratch[:k, 1] / sz
    want_state, want_out = layout.new_state(), layout.new_out()
    want = fused.update_book(want_state, expected_book, want_out)
    got_state, got_out, got_book = layout.new_state(), layout.new_out(), np.full((4, depth), 7.0)
    got = fused.update_book_levels(got_state, keys, sizes, counts, px, sz, got_book, got_out)
    assert got == want
    assert_identical(got_book, expected_book)
    assert_identical(got_state, want_state)
    assert_identical(got_out, want_out)
