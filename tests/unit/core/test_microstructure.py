"""Microstructure kernels: against the published definitions on real Binance and XRP/ETH data,
incremental equal to batch, and the fused per-event kernel equal to the separate ones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core import reference as ref
from tests.unit.core.checks import assert_close, assert_identical
from tests.unit.core.realdata import (
    binance_book_ticker,
    binance_events,
    binance_trades,
    xrp_eth_trades,
)
from tradebot.core import fused
from tradebot.core import microstructure as micro
from tradebot.core import microstructure_flow as flow
from tradebot.core.fused_layout import MicroFeatureParams, micro_layout

Trades = tuple[np.ndarray, np.ndarray, np.ndarray]


@st.composite
def trades(draw: st.DrawFn) -> Trades:
    """Draw (price, size, side) with repeated prices, zero sizes and unknown sides."""
    n = draw(st.integers(0, 150))
    steps = draw(st.lists(st.sampled_from([-2.0, -1.0, 0.0, 0.0, 1.0, 2.0]), min_size=n,
                          max_size=n))
    price = 100.0 + 0.01 * np.cumsum(steps)
    size = np.array(draw(st.lists(st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 50.0)),
                                  min_size=n, max_size=n)))
    side = np.array(draw(st.lists(st.sampled_from([1.0, -1.0, 0.0]), min_size=n, max_size=n)))
    return price, size, side


def _run(update: Callable[..., float], state: np.ndarray, *cols: np.ndarray) -> np.ndarray:
    return np.array([update(state, *(float(c[i]) for c in cols)) for i in range(cols[0].size)])


@pytest.fixture(scope="module")
def book() -> np.ndarray:
    return binance_book_ticker()


def test_top_of_book_features_match_their_definitions_on_binance(book: np.ndarray) -> None:
    b, bs, a, a_s = (np.ascontiguousarray(book[:, j]) for j in range(4))
    spread, mid, microprice = micro.top_of_book(b, bs, a, a_s)
    assert np.array_equal(spread, a - b) and np.array_equal(mid, (a + b) / 2)
    expected = [ref.microprice(*row) for row in book.tolist()]
    assert_close(microprice, expected, b.max(), "microprice")
    assert ((microprice >= b) & (microprice <= a)).all()


def test_order_flow_imbalance_matches_cont_kukanov_stoikov_on_binance(book: np.ndarray) -> None:
    cols = [np.ascontiguousarray(book[:, j]) for j in range(4)]
    e, total = micro.ofi(*cols, 100)
    r_e, r_total = ref.ofi(*(c.tolist() for c in cols), 100)
    assert_close(e, r_e, 1.0, "ofi event")
    assert_close(total, r_total, 1.0, "ofi window")
    state = micro.ofi_state(100)
    out = np.empty(2)
    rows = []
    for row in book:
        micro.ofi_update(state, *row, out)
        rows.append(out.copy())
    assert_identical(np.array(rows).T, np.array([e, total]), "ofi incremental")


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.lists(st.lists(st.floats(0.0, 100.0), min_size=12, max_size=12),
                                   min_size=1, max_size=20))
def test_depth_imbalance_matches_its_definition(depth: int, rows: list[list[float]]) -> None:
    sizes = np.array(rows)
    bids, asks = np.ascontiguousarray(sizes[:, :6]), np.ascontiguousarray(sizes[:, 6:])
    ours = micro.depth_imbalance(bids, asks, depth)
    for i in range(len(rows)):
        total = bids[i, :depth].sum() + asks[i, :depth].sum()
        if total == 0:
            assert np.isnan(ours[i])
        else:
            assert ours[i] == pytest.approx(ref.depth_imbalance(bids[i], asks[i], depth),
                                            rel=1e-12, abs=1e-15)


def _check_trade_kernels(price: np.ndarray, size: np.ndarray, side: np.ndarray, window: int,
                         bucket: float) -> None:
    assert_identical(_run(micro.trade_imbalance_update, micro.trade_imbalance_state(window),
                          size, side), micro.trade_imbalance(size, side, window), "tfi")
    assert_identical(_run(flow.vpin_update, flow.vpin_state(bucket, 5), size, side),
                     flow.vpin(size, side, bucket, 5), "vpin")
    assert_identical(_run(flow.kyle_lambda_update, flow.kyle_lambda_state(window + 1), price,
                          size, side), flow.kyle_lambda(price, size, side, window + 1), "kyle")


@settings(max_examples=50, deadline=None)
@given(trades(), st.integers(1, 20), st.sampled_from([0.5, 1.0, 7.0, 60.0]))
def test_trade_kernels_incremental_equal_batch_on_random_trades(t: Trades, window: int,
                                                               bucket: float) -> None:
    _check_trade_kernels(*t, window, bucket)


@pytest.mark.parametrize("source", ["xrp_eth", "binance"])
def test_trade_kernels_match_their_definitions_on_real_trades(source: str) -> None:
    if source == "xrp_eth":
        _, price, size, side = xrp_eth_trades()
        bucket = 5000.0
    else:
        price, size, side = binance_trades()
        bucket = 0.5
    assert_close(micro.trade_imbalance(size, side, 200),
                 ref.trade_imbalance(size.tolist(), side.tolist(), 200), 1.0, "tfi")
    ours_vpin = flow.vpin(size, side, bucket, 20)
    assert_close(ours_vpin, ref.vpin(size.tolist(), side.tolist(), bucket, 20), 1.0, "vpin")
    defined = ours_vpin[~np.isnan(ours_vpin)]
    assert defined.size and (defined >= 0).all() and (defined <= 1 + 1e-12).all()
    lam = flow.kyle_lambda(price, size, side, 200)
    r_lam = ref.kyle_lambda(price.tolist(), size.tolist(), side.tolist(), 200)
    assert_close(lam, r_lam, float(np.nanmax(np.abs(r_lam))), "kyle lambda")
    _check_trade_kernels(price, size, side, 200, bucket)


def test_fused_micro_kernel_equals_the_separate_kernels_on_binance_events() -> None:
    events = binance_events()
    p = MicroFeatureParams(depth=1, ofi_window=50, trade_window=100, vpin_bucket_volume=0.5,
                           vpin_buckets=20, kyle_window=100)
    layout = micro_layout(p)
    state = layout.new_state()
    out = layout.new_out()
    rows = []
    for kind, values in events:
        if kind == "book":
            assert fused.update_book(state, np.array(values).reshape(4, 1), out) == fused.OK
        else:
            assert fused.update_trade(state, out, *values) == fused.OK
        rows.append(out.copy())
    got = np.array(rows)
    is_book = np.array([k == "book" for k, _ in events])
    book = np.array([v for k, v in events if k == "book"])
    tr = np.array([v for k, v in events if k == "trade"])
    b, bs, a, a_s = (np.ascontiguousarray(book[:, j]) for j in range(4))
    price, size, side = (np.ascontiguousarray(tr[:, j]) for j in range(3))
    expected_book = [*micro.top_of_book(b, bs, a, a_s), micro.depth_imbalance(
        np.ascontiguousarray(bs[:, None]), np.ascontiguousarray(a_s[:, None]), 1),
        *micro.ofi(b, bs, a, a_s, 50)]
    for j, values in enumerate(expected_book):
        assert_identical(got[is_book, j], values, layout.names[j])
    expected_trade = [micro.trade_imbalance(size, side, 100), flow.vpin(size, side, 0.5, 20),
                      flow.kyle_lambda(price, size, side, 100)]
    for j, values in enumerate(expected_trade, start=6):
        assert_identical(got[~is_book, j], values, layout.names[j])


@pytest.mark.parametrize(("book_rows", "code"), [
    ([[100.0], [1.0], [100.0], [1.0]], fused.INCONSISTENT),  # crossed (bid >= ask)
    ([[100.0], [np.nan], [101.0], [1.0]], fused.NOT_FINITE),
    ([[100.0], [-1.0], [101.0], [1.0]], fused.NEGATIVE),
    ([[0.0], [1.0], [101.0], [1.0]], fused.NEGATIVE),
])
def test_a_rejected_book_leaves_the_micro_state_untouched(book_rows: list[list[float]],
                                                          code: int) -> None:
    layout = micro_layout(MicroFeatureParams(depth=1))
    state, out = layout.new_state(), layout.new_out()
    fused.update_book(state, np.array([[99.0], [2.0], [101.0], [3.0]]), out)
    before, before_out = state.copy(), out.copy()
    assert fused.update_book(state, np.array(book_rows), out) == code
    assert_identical(state, before)
    assert_identical(out, before_out)
    assert fused.update_trade(state, out, 100.0, 1.0, 2.0) == fused.INCONSISTENT
    assert fused.update_trade(state, out, -1.0, 1.0, 1.0) == fused.NEGATIVE
    assert fused.update_trade(state, out, 100.0, np.inf, 1.0) == fused.NOT_FINITE
    assert_identical(state, before)
