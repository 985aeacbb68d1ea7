"""Core kernel figures (issue 4), each beside the peer users would otherwise pick:

- batch: every indicator over 1,000,000 bars beside TA-Lib (goal: within 2.5x of its time);
- incremental: the whole bar feature set per tick in one fused call beside talipp updating the
  same indicators one value at a time (goal: <= 250 ns per tick, >= 30x faster than talipp);
  the per-event microstructure kernel;
- risk: historical VaR over 10,000 returns and a 20x20 rolling correlation update.

The series are real: ETH/BTC 5-minute candles ($TRADEBOT_DATA_DIR/candles), their returns and
ranges cycled to the length needed. Every figure is the median of repeated runs (the machine
is shared and noisy). The batch table is measured twice, in child processes: with glibc's
default allocator settings, which hand blocks of more than 32 MB back to the kernel so every
call page-faults its outputs in again (about 2 us a page on this VM; it hits TA-Lib's arrays
and ours alike), and with MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised so that the
figures measure computation.

Run: `python -m benchmarks core` (or `python -m benchmarks.bench_core`).
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numba import njit

from tradebot.core import fused
from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol
from tradebot.core import riskmath_corr as rc
from tradebot.core import riskmath_var as rv
from tradebot.core.fused_layout import MicroFeatureParams, bar_layout, micro_layout

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADEBOT_DATA_DIR", REPO.parent / "shared" / "data"))
REPEATS = 7
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def median_seconds(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    """Return the median wall time of `fn()` over `repeats` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def real_bars(n: int) -> np.ndarray:
    """Return n OHLCV rows shaped like ETH/BTC 5m: its returns, ranges and volumes cycled."""
    with gzip.open(DATA / "candles" / "ETH_BTC-5m.csv.gz", "rt") as f:
        raw = np.loadtxt(f, delimiter=",", skiprows=1, usecols=(1, 2, 3, 4, 5))
    o, h, lo, c, v = raw.T
    reps = -(-n // (c.size - 1))
    r = np.tile(np.diff(np.log(c)), reps)[:n]
    close = c[0] * np.exp(np.cumsum(r))
    take = np.tile(np.arange(1, c.size), reps)[:n]
    rows = np.column_stack((close * o[take] / c[take], close * h[take] / c[take],
                            close * lo[take] / c[take], close, v[take]))
    return np.ascontiguousarray(rows)


# --- batch ---------------------------------------------------------------------------------


def batch_table() -> list[tuple[str, float, float | None]]:
    """Return (indicator, ours ms, TA-Lib ms or None) over 1,000,000 bars."""
    import talib

    _, h, lo, c, v = (np.ascontiguousarray(x) for x in real_bars(1_000_000).T)
    cases: list[tuple[str, Callable[[], object], Callable[[], object] | None]] = [
        ("sma 20", lambda: ind.sma(c, 20), lambda: talib.SMA(c, 20)),
        ("ema 20", lambda: ind.ema(c, 20), lambda: talib.EMA(c, 20)),
        ("wma 20", lambda: ind.wma(c, 20), lambda: talib.WMA(c, 20)),
        ("rsi 14", lambda: ind.rsi(c, 14), lambda: talib.RSI(c, 14)),
        ("macd 12 26 9", lambda: trend.macd(c, 12, 26, 9), lambda: talib.MACD(c, 12, 26, 9)),
        ("atr 14", lambda: trend.atr(h, lo, c, 14), lambda: talib.ATR(h, lo, c, 14)),
        ("bollinger 20 2 (+%b, width)", lambda: stats.bollinger(c, 20, 2.0),
         lambda: talib.BBANDS(c, 20, 2.0, 2.0, talib.MA_Type.SMA)),
        ("stoch 14 3 3", lambda: sto.stoch(h, lo, c, 14, 3, 3),
         lambda: talib.STOCH(h, lo, c, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)),
        ("adx 14 (+DI, -DI)", lambda: adx.adx(h, lo, c, 14),
         lambda: (talib.ADX(h, lo, c, 14), talib.PLUS_DI(h, lo, c, 14),
                  talib.MINUS_DI(h, lo, c, 14))),
        ("obv", lambda: vol.obv(c, v), lambda: talib.OBV(c, v)),
        ("roc 10", lambda: stats.roc(c, 10), lambda: talib.ROC(c, 10)),
        ("supertrend 10 3", lambda: trend.supertrend(h, lo, c, 10, 3.0), None),
        ("rolling vwap 20 (+deviation)", lambda: vol.vwap(h, lo, c, v, 20), None),
        ("realized vol 20", lambda: stats.realized_vol(c, 20), None),
        ("z-score 20", lambda: stats.zscore(c, 20), None),
    ]
    return [(name, median_seconds(ours) * 1e3,
             None if theirs is None else median_seconds(theirs) * 1e3)
            for name, ours, theirs in cases]


def print_batch() -> None:
    runs = {}
    for label, extra in (("default malloc", {}), ("glibc keeps freed memory", TUNED_MALLOC)):
        env = {**os.environ, **extra, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-m", "benchmarks.bench_core", "--batch-json"],
                              env=env, cwd=REPO, check=True, capture_output=True, text=True)
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nbatch over 1,000,000 bars, ms (median of 7); ratio = ours / TA-Lib (goal <= 2.5)")
    labels = list(runs)
    print(f"{'indicator':30s}" + "".join(f" | {x:^30s}" for x in labels))
    print(f"{'':30s}" + " | {:>8s} {:>8s} {:>11s}".format("ours", "TA-Lib", "ratio") * 2)
    for i, (name, *_rest) in enumerate(runs[labels[0]]):
        line = f"{name:30s}"
        for label in labels:
            _, ours, theirs = runs[label][i]
            ratio = f"{ours / theirs:11.2f}" if theirs else f"{'(no peer)':>11s}"
            line += f" | {ours:8.2f} {theirs or float('nan'):8.2f} {ratio}"
        print(line)


# --- incremental ---------------------------------------------------------------------------


@njit(nogil=True)
def _noop(state: np.ndarray, bar: np.ndarray, out: np.ndarray) -> int:
    return 0


def per_call_ns(fn: Callable[..., object], args: Sequence[tuple[object, ...]]) -> float:
    """Return the median cost of one Python-level call of `fn`, in ns."""
    def run() -> None:
        for a in args:
            fn(*a)
    return median_seconds(run) / len(args) * 1e9


def talipp_per_tick_us(rows: np.ndarray) -> float:
    """Return talipp's cost to add one bar to the same indicator set, in microseconds."""
    from talipp.indicators import (
        ADX,
        ATR,
        BB,
        EMA,
        MACD,
        OBV,
        ROC,
        RSI,
        SMA,
        VWAP,
        WMA,
        StdDev,
        Stoch,
        SuperTrend,
    )
    from talipp.ohlcv import OHLCV

    bars = [OHLCV(*map(float, r)) for r in rows]

    def run() -> None:
        on_close = [SMA(20), EMA(20), WMA(20), RSI(14), MACD(12, 26, 9), BB(20, 2.0),
                    ROC(10), StdDev(20)]
        on_bar = [ATR(14), SuperTrend(10, 3), Stoch(14, 3), ADX(14, 14), OBV(), VWAP()]
        for bar in bars:
            for i in on_close:
                i.add(bar.close)
            for i in on_bar:
                i.add(bar)
    return median_seconds(run, 3) / len(bars) * 1e6


@njit(nogil=True)
def _replay_micro(state: np.ndarray, books: np.ndarray, trades: np.ndarray,
                  out: np.ndarray) -> None:
    for i in range(trades.shape[0]):
        fused.update_book(state, books[i], out)
        fused.update_trade(state, out, trades[i, 0], trades[i, 1], trades[i, 2])


def print_incremental() -> None:
    fused.warmup()
    layout = bar_layout()
    rows = real_bars(200_000)
    out = layout.new_out()
    in_kernel = median_seconds(lambda: fused.replay_bars(layout.new_state(), rows, out))
    in_kernel_ns = in_kernel / rows.shape[0] * 1e9
    state = layout.new_state()
    fused.replay_bars(state, rows[:1000], out)
    calls = [(state, rows[1000 + i], out) for i in range(50_000)]
    python_ns = per_call_ns(fused.update_bar, calls)
    # The compiled wrapper without numba's type dispatch: safe only with exactly these types.
    compiled = fused.update_bar.overloads[fused.update_bar.signatures[0]]
    entry = compiled.entry_point  # type: ignore[attr-defined]
    entry_ns = per_call_ns(entry, calls)
    _noop(state, rows[0], out)
    noop_ns = per_call_ns(_noop, calls)
    talipp_us = talipp_per_tick_us(rows[:3000])
    n = len(layout.names)
    print(f"\nincremental: all {n} bar features of one instrument per tick, one fused call "
          f"(goal <= 250 ns, >= 30x talipp)")
    print(f"  fused kernel, per tick inside the compiled loop   {in_kernel_ns:9.0f} ns")
    print(f"  update_bar(state, bar, out) called from Python     {python_ns:9.0f} ns")
    print(f"    of which numba's dispatch (empty 3-array kernel) {noop_ns:9.0f} ns")
    print(f"  same call through the compiled entry point          {entry_ns:9.0f} ns")
    print(f"  talipp, same indicators, one bar at a time         {talipp_us * 1e3:9.0f} ns")
    print(f"  ratio talipp / fused: from Python {talipp_us * 1e3 / python_ns:.0f}x, "
          f"kernel alone {talipp_us * 1e3 / in_kernel_ns:.0f}x")
    print_micro()


def print_micro() -> None:
    from tests.unit.core.realdata import binance_events

    events = binance_events()
    book_rows = [np.array(v).reshape(4, 1) for k, v in events if k == "book"]
    trade_rows = [v for k, v in events if k == "trade"]
    m = min(len(book_rows), len(trade_rows))
    books = np.ascontiguousarray(np.stack(book_rows[:m]))
    trades = np.ascontiguousarray(np.array(trade_rows[:m]))
    layout = micro_layout(MicroFeatureParams(depth=1, vpin_bucket_volume=0.5))
    out = layout.new_out()
    in_kernel = median_seconds(lambda: _replay_micro(layout.new_state(), books, trades, out))
    state = layout.new_state()
    book_ns = per_call_ns(fused.update_book, [(state, b, out) for b in books])
    trade_ns = per_call_ns(fused.update_trade, [(state, out, *t) for t in trades.tolist()])
    print(f"\nmicrostructure ({len(layout.names)} features), Binance BTCUSDT bookTicker + trades")
    print(f"  book + trade event pair inside a compiled loop     {in_kernel / m * 1e9:9.0f} ns")
    print(f"  update_book from Python                            {book_ns:9.0f} ns")
    print(f"  update_trade from Python                           {trade_ns:9.0f} ns")


# --- risk ----------------------------------------------------------------------------------


@njit(nogil=True)
def _corr_updates(state: np.ndarray, rows: np.ndarray, out: np.ndarray) -> None:
    for i in range(rows.shape[0]):
        rc.cov_step(state, 0, rows[i])
        rc.corr_read(state, 0, out)


def print_risk() -> None:
    r = np.ascontiguousarray(np.diff(np.log(real_bars(10_001)[:, 3])))
    out = np.empty(2)
    hist_us = median_seconds(lambda: rv.var_historical(r, 0.99, 1), 51) * 1e6
    state = rv.hvar_state(10_000, 0.99, 1)
    for x in r:
        rv.hvar_update(state, float(x), out)
    updates = [(state, float(x), out) for x in r[:2000]]
    hupdate_us = per_call_ns(rv.hvar_update, updates) / 1e3
    param_us = median_seconds(lambda: rv.var_parametric(r, 0.99, 1), 51) * 1e6
    mc_ms = median_seconds(lambda: rv.var_monte_carlo(r, 0.99, 10, 10_000, 7)) * 1e3
    rows = np.ascontiguousarray(np.random.default_rng(7).normal(0.0, 0.01, (5000, 20)))
    cstate = rc.cov_state(20, 250)
    corr = np.empty((20, 20))
    for row in rows[:300]:
        rc.corr_update(cstate, row, corr)
    corr_py_us = per_call_ns(rc.corr_update, [(cstate, row, corr) for row in rows]) / 1e3
    _corr_updates(cstate, rows[:10], corr)
    corr_k_us = median_seconds(lambda: _corr_updates(cstate, rows, corr)) / rows.shape[0] * 1e6
    print("\nrisk, microseconds (median)")
    print(f"  historical VaR + ES over 10,000 returns (batch)        {hist_us:9.1f}")
    print(f"  rolling historical VaR + ES, window 10,000, one update {hupdate_us:9.1f}")
    print(f"  parametric VaR + ES over 10,000 returns                {param_us:9.1f}")
    print(f"  Monte Carlo VaR + ES, 10,000 paths of 10 periods       {mc_ms * 1e3:9.1f}")
    print(f"  20x20 rolling correlation update (window 250), Python  {corr_py_us:9.2f}")
    print(f"  20x20 rolling correlation update, in a compiled loop   {corr_k_us:9.2f}")


def main(argv: list[str]) -> int:
    if argv == ["--batch-json"]:
        print(json.dumps(batch_table()))
        return 0
    from importlib.metadata import version

    import talib

    print(f"python {platform.python_version()}, numpy {version('numpy')}, numba "
          f"{version('numba')}, TA-Lib {version('ta-lib')} (C library "
          f"{talib.__ta_version__.decode().split()[0]}), talipp {version('talipp')}; "
          f"{os.cpu_count()} cpus")
    print_batch()
    print_incremental()
    print_risk()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
