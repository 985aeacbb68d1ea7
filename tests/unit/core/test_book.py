from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.core import book as kbook

level = st.tuples(st.sampled_from([1, -1]), st.integers(1, 60), st.integers(0, 5))


def reference(updates: list[tuple[int, int, int]]) -> tuple[dict[int, int], dict[int, int]]:
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for side, price, size in updates:
        book = bids if side == 1 else asks
        if size == 0:
            book.pop(price, None)
        else:
            book[price] = size
    return bids, asks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(level, max_size=12), max_size=12))
def test_apply_matches_a_dict_reference_and_reports_crossing(batches: list) -> None:
    keys, sizes, counts, top = kbook.new_book(4)
    applied: list[tuple[int, int, int]] = []
    for batch in batches:
        levels = np.array(batch, np.int64).reshape(-1, 3)
        status = kbook.book_apply(keys, sizes, counts, levels, len(batch), top, 10_000)
        while status == kbook.CAPACITY:
            grown = [np.zeros((2, keys.shape[1] * 2), np.int64) for _ in range(2)]
            grown[0][:, : keys.shape[1]] = keys
            grown[1][:, : keys.shape[1]] = sizes
            keys, sizes = grown
            status = kbook.book_apply(keys, sizes, counts, levels, len(batch), top, 10_000)
        applied += batch
        bids, asks = reference(applied)
        got_bids = {int(keys[0, i]): int(sizes[0, i]) for i in range(counts[0])}
        got_asks = {int(-keys[1, i]): int(sizes[1, i]) for i in range(counts[1])}
        assert got_bids == bids and got_asks == asks
        best_bid = max(bids, default=0)
        best_ask = min(asks, default=0)
        assert (top[kbook.TOP_BID], top[kbook.TOP_ASK]) == (best_bid, best_ask)
        assert top[kbook.TOP_BID_SIZE] == bids.get(best_bid, 0)
        assert top[kbook.TOP_ASK_SIZE] == asks.get(best_ask, 0)
        crossed = bool(bids) and bool(asks) and best_bid >= best_ask
        assert status == (kbook.CROSSED if crossed else kbook.OK)


def test_negative_size_is_reported_not_applied() -> None:
    keys, sizes, counts, top = kbook.new_book(8)
    status = kbook.book_apply(keys, sizes, counts, np.array([[1, 10, -1]], np.int64), 1, top,
                              100)
    assert status == kbook.BAD_LEVEL and counts[0] == 0


def test_walk_takes_best_levels_first_and_respects_the_limit() -> None:
    keys, sizes, counts, top = kbook.new_book(8)
    levels = np.array([[-1, 101, 2], [-1, 103, 5], [-1, 102, 1], [1, 99, 4]], np.int64)
    kbook.book_apply(keys, sizes, counts, levels, 4, top, 100)
    out = np.zeros((8, 2), np.int64)
    n = kbook.book_walk(keys, sizes, counts, 1, 6, 0, out)
    assert out[:n].tolist() == [[101, 2], [102, 1], [103, 3]]
    n = kbook.book_walk(keys, sizes, counts, 1, 6, 102, out)
    assert out[:n].tolist() == [[101, 2], [102, 1]]
    n = kbook.book_walk(keys, sizes, counts, -1, 9, 0, out)
    assert out[:n].tolist() == [[99, 4]]


def test_depth_is_bounded_keeping_the_best_levels() -> None:
    keys, sizes, counts, top = kbook.new_book(64)
    bids = np.array([[1, p, 1] for p in range(1, 21)], np.int64)
    assert kbook.book_apply(keys, sizes, counts, bids, 20, top, 8) == kbook.OK
    assert counts[0] == 8 and keys[0, :8].tolist() == list(range(13, 21))  # trimmed to the best 8
    worse = np.array([[1, 2, 5]], np.int64)
    kbook.book_apply(keys, sizes, counts, worse, 1, top, 8)
    assert 2 not in keys[0, : counts[0]].tolist()  # below the worst kept level: not tracked
    better = np.array([[1, 30, 5], [1, 20, 0]], np.int64)
    kbook.book_apply(keys, sizes, counts, better, 2, top, 8)
    assert top[0] == 30 and keys[0, counts[0] - 1] == 30 and 20 not in keys[0, : counts[0]]


@settings(max_examples=100, deadline=None)
@given(st.lists(level, max_size=40), st.lists(st.tuples(st.sampled_from([0, 1]),
                                                        st.integers(1, 60)), max_size=20))
def test_level_sizes_answers_many_prices_like_a_dict(updates: list, queries: list) -> None:
    keys, sizes, counts, top = kbook.new_book(64)
    kbook.book_apply(keys, sizes, counts, np.array(updates, np.int64).reshape(-1, 3),
                     len(updates), top, 1000)
    bids, asks = reference(updates)
    rows = np.array([r for r, _ in queries], np.int64)
    prices = np.array([p for _, p in queries], np.int64)
    out = np.zeros(len(queries), np.int64)
    kbook.level_sizes(keys, sizes, counts, rows, prices, len(queries), out)
    expected = [(bids if r == 0 else asks).get(p, 0) for r, p in queries]
    assert out.tolist() == expected
