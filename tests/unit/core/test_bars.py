"""Bars from trades: the exchange's own candles rebuilt from its trades, a plain-Python
reference, and the incremental form equal to the batch form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core import reference as ref
from tests.unit.core.checks import assert_close, assert_identical
from tests.unit.core.realdata import Candles, xrp_eth_trades
from tradebot.core import bars

MINUTE = 60_000_000_000
Trades = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.mark.parametrize(("candles", "interval"), [("XRP_ETH-1m", MINUTE),
                                                    ("XRP_ETH-5m", 5 * MINUTE)])
def test_time_bars_from_trades_rebuild_the_exchange_candles(candles: str, interval: int) -> None:
    ts, price, size, side = xrp_eth_trades()
    times, values = bars.time_bars(ts, price, size, side, interval)
    k = Candles(candles)
    assert np.array_equal(times[:, 0], k.ts * 1_000_000)
    assert np.array_equal(times[:, 1], times[:, 0] + interval)
    assert np.array_equal(values[:, :4], k.ohlcv[:, :4])  # exact: the same trades
    assert_close(values[:, 4], k.volume, float(k.volume.max()), "volume")
    assert np.allclose(values[:, 7] + values[:, 8], values[:, 4], rtol=1e-12)
    assert values[:, 6].sum() == ts.size


@pytest.mark.parametrize(("kind", "threshold"), [("time", 7 * MINUTE), ("volume", 25_000.0),
                                                 ("dollar", 40.0)])
def test_bars_match_the_reference_on_real_trades(kind: str, threshold: float) -> None:
    ts, price, size, side = xrp_eth_trades()
    make = {"time": bars.time_bars, "volume": bars.volume_bars, "dollar": bars.dollar_bars}[kind]
    times, values = make(ts, price, size, side, int(threshold) if kind == "time" else threshold)
    expected = ref.bars(ts.tolist(), price.tolist(), size.tolist(), side.tolist(), kind,
                        threshold)
    assert len(expected) == times.shape[0] > 10
    assert np.array_equal(times, np.array([(a, b) for a, b, _ in expected]))
    assert_close(values, np.array([v for _, _, v in expected]), float(price.max()), kind)


@st.composite
def trade_stream(draw: st.DrawFn) -> Trades:
    """Draw trades with gaps, equal times, out-of-order times and invalid values mixed in."""
    n = draw(st.integers(0, 80))
    gaps = draw(st.lists(st.sampled_from([0, 1, 5, 999_999_999, 1_000_000_000, 3_500_000_000,
                                          -7]), min_size=n, max_size=n))
    ts = (1_700_000_000_000_000_000 + np.cumsum(gaps)).astype(np.int64)
    price = np.array(draw(st.lists(st.one_of(st.floats(0.5, 2.0), st.sampled_from(
        [math.nan, -1.0, 0.0, math.inf])), min_size=n, max_size=n)))
    size = np.array(draw(st.lists(st.one_of(st.floats(0.0, 10.0), st.sampled_from(
        [-1.0, math.nan])), min_size=n, max_size=n)))
    side = np.array(draw(st.lists(st.sampled_from([1.0, -1.0, 0.0, 2.0]), min_size=n,
                                  max_size=n)))
    return ts, price, size, side


def _incremental(state: tuple[np.ndarray, np.ndarray], t: Trades) -> tuple[np.ndarray, np.ndarray]:
    fs, ist = state
    times, values = [], []
    for i in range(t[0].size):
        if bars.bar_update(fs, ist, int(t[0][i]), *(float(c[i]) for c in t[1:])) == bars.EMITTED:
            a, b, v = bars.emitted_bar(fs, ist)
            times.append((a, b))
            values.append(v.copy())
    if bars.bar_flush(fs, ist, 0, True) == bars.EMITTED:
        a, b, v = bars.emitted_bar(fs, ist)
        times.append((a, b))
        values.append(v.copy())
    return (np.array(times, dtype=np.int64).reshape(-1, 2),
            np.array(values).reshape(-1, len(bars.FIELDS)))


@settings(max_examples=50, deadline=None)
@given(trade_stream(), st.sampled_from([1, 1_000_000_000, 60_000_000_000]),
       st.sampled_from([0.5, 3.0, 25.0]))
def test_incremental_bars_equal_batch_bars(t: Trades, interval: int, threshold: float) -> None:
    for state, batch in ((bars.time_bar_state(interval), bars.time_bars(*t, interval)),
                         (bars.volume_bar_state(threshold), bars.volume_bars(*t, threshold)),
                         (bars.dollar_bar_state(threshold), bars.dollar_bars(*t, threshold))):
        times, values = _incremental(state, t)
        assert np.array_equal(times, batch[0])
        assert_identical(values, batch[1])


def test_incremental_bars_equal_batch_bars_on_real_trades() -> None:
    t = xrp_eth_trades()
    for state, batch in ((bars.time_bar_state(MINUTE), bars.time_bars(*t, MINUTE)),
                         (bars.volume_bar_state(25_000.0), bars.volume_bars(*t, 25_000.0)),
                         (bars.dollar_bar_state(40.0), bars.dollar_bars(*t, 40.0))):
        times, values = _incremental(state, t)
        assert np.array_equal(times, batch[0])
        assert_identical(values, batch[1])


def test_a_time_bar_closes_on_the_clock_and_late_trades_are_rejected() -> None:
    fs, ist = bars.time_bar_state(MINUTE)
    assert bars.bar_update(fs, ist, 10, 1.0, 2.0, 1.0) == bars.NOTHING
    assert bars.bar_flush(fs, ist, MINUTE - 1, False) == bars.NOTHING
    assert bars.bar_flush(fs, ist, MINUTE, False) == bars.EMITTED
    t_open, t_close, values = bars.emitted_bar(fs, ist)
    assert (t_open, t_close) == (0, MINUTE) and values[bars.FIELDS.index("buy_volume")] == 2.0
    assert bars.bar_update(fs, ist, MINUTE - 5, 1.0, 1.0, 1.0) == bars.REJECTED
    assert bars.bar_update(fs, ist, MINUTE, 1.0, 1.0, -1.0) == bars.NOTHING
    assert bars.bar_update(fs, ist, MINUTE + 3, math.nan, 1.0, 1.0) == bars.REJECTED
    assert bars.bar_update(fs, ist, 2 * MINUTE, 1.5, 1.0, 0.0) == bars.EMITTED
    assert bars.emitted_bar(fs, ist)[2][bars.FIELDS.index("sell_volume")] == 1.0
