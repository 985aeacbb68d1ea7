"""Paper venue figures (issue 5):

- simulator cost per market event (book update or trade) with 100 resting orders over two
  instruments (USD-M BTCUSDT and ETHUSDT recordings merged by receive time; 25 bids and 25 asks
  per instrument, 1-25 ticks from the touch, replaced when they fill): the median time spent in
  the venue's book and trade handlers, beside the same timer around an empty handler;
- replay of the USD-M BTCUSDT recording with the `quoting` strategy, messages/s, beside the
  same replay with the default `ema_cross` strategy (median of REPEATS runs each).

Run: `python -m benchmarks paper` (or `python -m benchmarks.bench_paper`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADEBOT_DATA_DIR", REPO.parent / "shared" / "data"))
USDM = DATA / "binance_hftbacktest" / "usdm"
REPEATS = 3
RESTING_PER_SIDE = 25


def _config(tmp: str, strategy: str) -> Any:
    from tradebot.config import StrategyConfig, load_config

    cfg = load_config(environ={})
    return dataclasses.replace(
        cfg, state=dataclasses.replace(cfg.state, database_url=f"sqlite:///{tmp}/b.sqlite3"),
        paper=dataclasses.replace(cfg.paper, starting_cash=Decimal(10_000_000)),
        risk=dataclasses.replace(cfg.risk, max_position_notional=Decimal(10**9),
                                 max_order_notional=Decimal(10**9)),
        strategies=[StrategyConfig(name=strategy, kind=strategy)])


def replay_rate(strategy: str) -> dict[str, Any]:
    from tradebot.app import App
    from tradebot.clock import SimClock
    from tradebot.feeds.instruments import resolve
    from tradebot.feeds.replay import inspect

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(tmp, strategy)
        rec = inspect(USDM / "btcusdt_20240808.gz")
        insts = [i for i in cfg.instrument_map().values()
                 if i.id.venue == rec.venue and i.venue_symbol in rec.depth_symbols]
        app = App(cfg, SimClock(), instruments=resolve(cfg, feeds={rec.venue: insts}))
        return asyncio.run(app.run_replay([rec], progress=False))


class _Timed:
    def __init__(self, fn: Callable[[Any], None]) -> None:
        self.fn = fn
        self.ns: list[int] = []

    def __call__(self, event: Any) -> None:
        started = time.perf_counter_ns()
        self.fn(event)
        self.ns.append(time.perf_counter_ns() - started)


def _tagged(lines: Any, index: int) -> Any:
    for ts, payload in lines:
        yield ts, index, payload


def simulator_cost() -> dict[str, float]:
    from tradebot.app import App
    from tradebot.bus import Bus
    from tradebot.clock import SimClock
    from tradebot.domain import OrderType, Side
    from tradebot.events import BookUpdated, OrderIntent, OrderUpdated, SubmitOrder, Trade
    from tradebot.feeds.instruments import resolve
    from tradebot.feeds.replay import ReplayDriver, inspect, read_lines
    from tradebot.order import OrderSpec

    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(tmp, "ema_cross")
        cfg = dataclasses.replace(cfg, strategies=[])
        recs = [inspect(USDM / f) for f in ("btcusdt_20240808.gz", "ethusdt_20240808.gz")]
        insts = [i for i in cfg.instrument_map().values() if i.id.venue == "binance_usdm"
                 and any(i.venue_symbol in r.depth_symbols for r in recs)]
        clock = SimClock()
        app = App(cfg, clock, instruments=resolve(cfg, feeds={"binance_usdm": insts}))
        clock.advance_to(min(next(read_lines(r.path))[0] for r in recs))
        app.open_store()
        bus: Bus = app.bus
        venue = app.venue
        # Time the venue's own handlers: swap them in the bus's subscriber lists.
        timed_book, timed_trade, empty = _Timed(venue.on_book), _Timed(venue.on_trade), \
            _Timed(lambda _e: None)
        handlers = bus._handlers
        # In place: publishers may hold the list itself.
        handlers[BookUpdated][:] = [timed_book if h == venue.on_book else h
                                    for h in handlers[BookUpdated]] + [empty]
        handlers[Trade][:] = [timed_trade if h == venue.on_trade else h for h in handlers[Trade]]
        ids = iter(range(1, 10**9))
        wanted: dict[str, tuple[Any, Side, int]] = {}

        def place(iid: Any, side: Side, ticks: int) -> None:
            book = app.books[iid].book
            inst = app.instruments[iid]
            touch = Decimal(repr(book.best_bid if side is Side.BUY else book.best_ask))
            price = touch - side * ticks * inst.tick_size
            qty = max(inst.lot_size, inst.round_size_down(Decimal(130) / price))
            now = clock.now_ns()
            n = next(ids)
            spec = OrderSpec(strategy="bench", instrument=iid, side=side, quantity=qty,
                             order_type=OrderType.LIMIT, limit_price=price)
            intent = OrderIntent(intent_id=f"b{n}", spec=spec, ts_event=now, ts_init=now)
            wanted[f"B{n}"] = (iid, side, ticks)
            bus.publish(SubmitOrder(order_id=f"B{n}", intent=intent, ts_event=now, ts_init=now))

        def refill(event: OrderUpdated) -> None:
            order_id = event.state.order.order_id
            if event.state.status.is_terminal and order_id in wanted:
                place(*wanted.pop(order_id))

        bus.subscribe(OrderUpdated, refill)
        placed = False
        lines = heapq.merge(*[_tagged(read_lines(r.path), i) for i, r in enumerate(recs)])
        driver = ReplayDriver(app.feeds, clock, recs)
        for ts, i, payload in lines:
            clock.advance_to(ts)
            driver._dispatch(app.feeds["binance_usdm"], recs[i], ts, payload)
            if not placed and all(app.books[x.id].valid for x in insts):
                placed = True
                for inst in insts:
                    for k in range(1, RESTING_PER_SIDE + 1):
                        place(inst.id, Side.BUY, k)
                        place(inst.id, Side.SELL, k)
                timed_book.ns.clear()
                timed_trade.ns.clear()
                empty.ns.clear()
        resting = sum(len(s.resting) for s in venue.matcher.sets.values())
        app.close()
    events = timed_book.ns + timed_trade.ns
    return {
        "events": len(events), "resting_at_end": resting, "fills": app.record.fills,
        "median_us": statistics.median(events) / 1000,
        "book_median_us": statistics.median(timed_book.ns) / 1000,
        "trade_median_us": statistics.median(timed_trade.ns) / 1000,
        "p99_us": sorted(events)[int(len(events) * 0.99)] / 1000,
        "timer_overhead_us": statistics.median(empty.ns) / 1000,
    }


def main() -> None:
    from tradebot.log import setup_logging

    setup_logging("warning", "console", sys.stderr)  # figures on stdout, no per-book log lines
    cost = simulator_cost()
    print(f"simulator cost per market event, {cost['resting_at_end']} resting orders at the end "
          f"over 2 instruments, {cost['events']} events, {cost['fills']} fills:")
    print(f"  median {cost['median_us']:.2f} us (book {cost['book_median_us']:.2f}, trade "
          f"{cost['trade_median_us']:.2f}), p99 {cost['p99_us']:.2f} us; timer around an "
          f"empty handler {cost['timer_overhead_us']:.2f} us")
    rates: dict[str, list[int]] = {"quoting": [], "ema_cross": []}
    fills: dict[str, int] = {}
    for _ in range(REPEATS):
        for name in rates:
            summary = replay_rate(name)
            rates[name].append(int(summary["messages_per_second"]))
            fills[name] = int(summary["fills"])
    q, e = statistics.median(rates["quoting"]), statistics.median(rates["ema_cross"])
    print(f"replay usdm BTCUSDT with quoting: {q:,.0f} msgs/s median of {REPEATS} "
          f"({fills['quoting']} fills); with ema_cross: {e:,.0f} msgs/s "
          f"({fills['ema_cross']} fills); ratio {q / e:.2f}")


if __name__ == "__main__":
    main()
