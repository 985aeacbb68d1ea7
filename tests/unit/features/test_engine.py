"""FeatureEngine: per-instrument state updated by one kernel call per event, NaN until warm."""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

import tradebot.core
from tests.conftest import metric
from tests.unit.core.realdata import binance_book_ticker, xrp_eth_trades
from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import DEFAULT_INSTRUMENTS, FeaturesConfig
from tradebot.core import bars, fused
from tradebot.core.fused_layout import bar_layout, micro_layout
from tradebot.core.warmup import MODULES
from tradebot.domain import Instrument, InstrumentId, Side
from tradebot.events import Bar, BookUpdated, Trade
from tradebot.features import FeatureEngine

XRP = InstrumentId("XRP-ETH", "binance")
MINUTE = 60_000_000_000


def trade(price: float, size: float, ts: int, side: Side = Side.BUY,
          instrument: InstrumentId = XRP) -> Trade:
    return Trade(instrument=instrument, price=price, size=size, aggressor=side, trade_id="t",
                 ts_event=ts, ts_init=ts)


def engine(clock: SimClock, books: dict[InstrumentId, OrderBook] | None = None,
           interval_s: float = 60.0) -> tuple[Bus, FeatureEngine, list[Bar]]:
    bus = Bus()
    eng = FeatureEngine(bus, clock, books or {}, FeaturesConfig(bar_interval_s=interval_s))
    eng.start()
    published: list[Bar] = []
    bus.subscribe(Bar, published.append)
    return bus, eng, published


def replay_trades(bus: Bus, clock: SimClock, n: int | None = None) -> int:
    ts, price, size, side = xrp_eth_trades()
    end = ts.size if n is None else n
    for i in range(end):
        clock.advance_to(int(ts[i]))
        bus.publish(trade(float(price[i]), float(size[i]), int(ts[i]),
                          Side.BUY if side[i] > 0 else Side.SELL))
    return int(ts[end - 1])


def test_published_bars_are_the_batch_time_bars_of_the_recorded_trades() -> None:
    ts, price, size, side = xrp_eth_trades()
    clock = SimClock(int(ts[0]))
    bus, eng, published = engine(clock)
    last = replay_trades(bus, clock)
    clock.advance_to(last + 2 * MINUTE)  # the clock timer closes the last, quiet bar
    times, values = bars.time_bars(ts, price, size, side, MINUTE)
    assert len(published) == times.shape[0] > 50
    got = np.array([[b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades,
                     b.buy_volume, b.sell_volume] for b in published])
    np.testing.assert_array_equal(got, values)
    assert [(b.ts_open, b.ts_event) for b in published] == [tuple(t) for t in times]
    assert all(b.instrument == XRP and b.interval_ns == MINUTE for b in published)
    eng.stop()


def test_bar_features_equal_the_fused_kernel_over_the_same_bars_and_are_nan_until_warm() -> None:
    ts, price, size, side = xrp_eth_trades()
    clock = SimClock(int(ts[0]))
    bus, eng, published = engine(clock)
    layout = bar_layout()
    seen_rsi = []
    bus.subscribe(Bar, lambda _b: seen_rsi.append(eng.features(XRP)["rsi_14"]))
    replay_trades(bus, clock)
    _, values = bars.time_bars(ts, price, size, side, MINUTE)
    closed = values[: len(published)]
    expected = np.full((closed.shape[0], len(layout.names)), np.nan)
    fused.update_bars(layout.new_state(), np.ascontiguousarray(closed[:, :5]), expected)
    view = eng.features(XRP)
    for j, name in enumerate(layout.names):
        assert view[name] == expected[-1, j] or (math.isnan(view[name])
                                                 and math.isnan(expected[-1, j])), name
    # rsi_14 needs 15 bars: NaN for the first 14 completed bars, a value from the 15th on.
    assert all(math.isnan(v) for v in seen_rsi[:14])
    assert all(0.0 <= v <= 100.0 for v in seen_rsi[14:]) and len(seen_rsi) > 15


def test_a_fresh_instrument_reads_nan_for_every_feature() -> None:
    _, eng, _ = engine(SimClock(0))
    view = eng.features(XRP)
    assert set(view) == set(bar_layout().names) | set(micro_layout().names)
    assert all(math.isnan(v) for v in view.values())
    declared = eng.warmup_lengths()
    assert declared["rsi_14"] == ("bar", 15) and declared["spread"] == ("book", 1)
    assert declared["trade_imbalance_100"] == ("trade", 100)
    assert eng.names[: len(bar_layout().names)] == bar_layout().names
    with pytest.raises(KeyError):
        view["no_such_feature"]
    assert not hasattr(view, "__setitem__")


def test_trade_features_follow_the_recorded_trades() -> None:
    ts, price, size, side = xrp_eth_trades()
    clock = SimClock(int(ts[0]))
    bus, eng, _ = engine(clock)
    replay_trades(bus, clock, 300)
    m = micro_layout()
    state, out = m.new_state(), m.new_out()
    for i in range(300):
        fused.update_trade(state, out, float(price[i]), float(size[i]), float(side[i]))
    view = eng.features(XRP)
    for name in ("trade_imbalance_100", "kyle_lambda_100"):
        assert view[name] == out[m.index(name)]
        assert math.isfinite(view[name])
    assert math.isnan(view["spread"])  # no book seen yet


@pytest.mark.parametrize(("price", "size", "reason"), [
    (math.nan, 1.0, "not_finite"), (1.0, math.inf, "not_finite"), (-1.0, 1.0, "negative"),
    (0.0, 1.0, "negative"), (1.0, -2.0, "negative"),
])
def test_bad_trades_are_counted_and_never_reach_the_state(price: float, size: float,
                                                          reason: str) -> None:
    clock = SimClock(MINUTE)
    bus, eng, published = engine(clock)
    bus.publish(trade(1.0, 1.0, MINUTE))
    before_state = eng._state(XRP).micro_state.copy()
    before_bars = eng._state(XRP).bar_fs.copy()
    count = metric("tradebot_feature_rejected_inputs_total", reason=reason)
    bus.publish(trade(price, size, MINUTE + 1))
    assert metric("tradebot_feature_rejected_inputs_total", reason=reason) == count + 1
    np.testing.assert_array_equal(eng._state(XRP).micro_state, before_state)
    np.testing.assert_array_equal(eng._state(XRP).bar_fs, before_bars)
    clock.advance_to(3 * MINUTE)
    assert [(b.volume, b.trades) for b in published] == [(1.0, 1)]


def test_a_trade_older_than_a_closed_bar_is_counted_late_but_still_feeds_trade_flow() -> None:
    clock = SimClock(MINUTE)
    bus, eng, published = engine(clock)
    bus.publish(trade(1.0, 1.0, MINUTE + 5))
    clock.advance_to(2 * MINUTE + 2_000_000_000)  # closed by the timer after the grace
    assert len(published) == 1
    late = metric("tradebot_feature_rejected_inputs_total", reason="late_for_bar")
    bus.publish(trade(1.0, 2.0, MINUTE + 10))
    assert metric("tradebot_feature_rejected_inputs_total", reason="late_for_bar") == late + 1
    assert eng._state(XRP).seen["trade"] == 2


def test_quiet_market_bar_closes_on_the_clock_after_the_grace() -> None:
    clock = SimClock(10 * MINUTE)
    bus, _, published = engine(clock)
    bus.publish(trade(2.0, 1.0, 10 * MINUTE + 1, Side.SELL))
    clock.advance_to(11 * MINUTE + 500_000_000)
    assert published == []
    clock.advance_to(11 * MINUTE + 1_000_000_000)
    assert len(published) == 1
    bar = published[0]
    assert (bar.ts_open, bar.ts_event, bar.sell_volume, bar.buy_volume) == (
        10 * MINUTE, 11 * MINUTE, 1.0, 0.0)
    clock.advance_to(20 * MINUTE)
    assert len(published) == 1  # no trades: no more bars


def _instrument() -> Instrument:
    inst = next(i for i in DEFAULT_INSTRUMENTS if i.symbol == "BTC-USDT").build()
    assert isinstance(inst, Instrument)
    return inst


def _set_top(book: OrderBook, bid: float, bid_size: float, ask: float, ask_size: float) -> None:
    inst = book.instrument
    book.clear()

    def u(x: float, decimals: int) -> int:
        return int(Decimal(repr(float(x))).scaleb(decimals))

    rows = np.array([(1, u(bid, inst.price_decimals), u(bid_size, inst.size_decimals)),
                     (-1, u(ask, inst.price_decimals), u(ask_size, inst.size_decimals))],
                    np.int64)
    book.apply(rows, 2)


def _book_event(iid: InstrumentId, ts: int) -> BookUpdated:
    return BookUpdated(instrument=iid, best_bid=0.0, best_bid_size=0.0, best_ask=0.0,
                       best_ask_size=0.0, ts_event=ts, ts_init=ts)


def test_book_features_follow_recorded_book_tickers() -> None:
    inst = _instrument()
    book = OrderBook(inst)
    rows = binance_book_ticker()[:500]
    bus, eng, _ = engine(SimClock(0), {inst.id: book})
    m = micro_layout()
    state, out = m.new_state(), m.new_out()
    arr = np.zeros((4, 5))
    for i, (b, bs, a, asz) in enumerate(rows):
        _set_top(book, b, bs, a, asz)
        bus.publish(_book_event(inst.id, i))
        arr[:, 0] = (b, bs, a, asz)
        fused.update_book(state, arr, out)
    view = eng.features(inst.id)
    for name in ("spread", "mid", "microprice", "depth_imbalance_5", "ofi", "ofi_100"):
        assert view[name] == pytest.approx(out[m.index(name)], rel=1e-12, abs=1e-12), name
    assert view["mid"] == pytest.approx((rows[-1, 0] + rows[-1, 2]) / 2)


def test_a_crossed_book_is_counted_and_leaves_the_features_as_they_were() -> None:
    inst = _instrument()
    book = OrderBook(inst)
    bus, eng, _ = engine(SimClock(0), {inst.id: book})
    _set_top(book, 100.0, 1.0, 101.0, 2.0)
    bus.publish(_book_event(inst.id, 1))
    mid = eng.features(inst.id)["mid"]
    count = metric("tradebot_feature_rejected_inputs_total", reason="inconsistent")
    _set_top(book, 102.0, 1.0, 101.0, 2.0)
    bus.publish(_book_event(inst.id, 2))
    assert metric("tradebot_feature_rejected_inputs_total", reason="inconsistent") == count + 1
    assert eng.features(inst.id)["mid"] == mid == 100.5


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str,
              calls: dict[str, int]) -> None:
    real: Callable[..., int] = getattr(module, name)

    def wrapper(*args: Any) -> int:
        calls[name] = calls.get(name, 0) + 1
        return real(*args)

    monkeypatch.setattr(module, name, wrapper)


def test_each_event_is_one_feature_kernel_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    for name in ("update_book", "update_book_levels", "update_trade", "update_bar",
                 "update_bars"):
        _counting(monkeypatch, fused, name, calls)
    _counting(monkeypatch, bars, "bar_update", calls)
    inst = _instrument()
    book = OrderBook(inst)
    clock = SimClock(MINUTE)
    bus, _, published = engine(clock, {inst.id: book})
    _set_top(book, 100.0, 1.0, 101.0, 2.0)
    for i in range(7):
        bus.publish(_book_event(inst.id, MINUTE + i))
    assert calls == {"update_book_levels": 7}  # reads the book arrays itself
    for i in range(5):
        bus.publish(trade(100.5, 1.0, MINUTE + i * 30_000_000_000, instrument=inst.id))
    # 5 trades over 2.5 minutes: two bars completed by trades.
    assert len(published) == 2
    assert calls == {"update_book_levels": 7, "bar_update": 5, "update_trade": 5,
                     "update_bar": 2}


def test_warmup_compiles_every_core_module_that_has_a_warmup() -> None:
    with_warmup = {
        m.name for m in pkgutil.iter_modules(tradebot.core.__path__)
        if m.name != "warmup"
        and callable(getattr(importlib.import_module(f"tradebot.core.{m.name}"), "warmup", None))
    }
    assert with_warmup == set(MODULES)
    assert {"bars", "fused", "indicators", "microstructure", "riskmath"} <= with_warmup
