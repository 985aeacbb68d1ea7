"""StrategyRunner delivers each market hook only to strategies that implement it."""

from __future__ import annotations

from tests.unit.strategies.test_ema_cross import Flat
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import InstrumentId, Side
from tradebot.events import BookUpdated, Trade
from tradebot.strategies.base import Strategy, StrategyRunner

BTC = InstrumentId("BTC-USDT", "binance")


class Books(Strategy):
    def __init__(self, name: str) -> None:
        super().__init__(name, {})
        self.books = 0

    def on_book(self, event: BookUpdated) -> None:
        self.books += 1


class Trades(Strategy):
    def __init__(self) -> None:
        super().__init__("trades", {})
        self.trades = 0

    def on_trade(self, event: Trade) -> None:
        self.trades += 1


def book() -> BookUpdated:
    return BookUpdated(instrument=BTC, best_bid=1.0, best_bid_size=1.0, best_ask=2.0,
                       best_ask_size=1.0, ts_event=0, ts_init=0)


def trade() -> Trade:
    return Trade(instrument=BTC, price=1.5, size=1.0, aggressor=Side.BUY, trade_id="1",
                 ts_event=0, ts_init=0)


def test_a_hook_no_strategy_implements_is_not_subscribed_and_late_strategies_still_hear() -> None:
    bus = Bus()
    runner = StrategyRunner(bus, SimClock(0), Flat(), {})
    first = Books("a")
    runner.add(first, None)
    runner.start()
    assert not bus.wants(Trade)  # nobody implements on_trade: trades cost the runner nothing
    bus.publish(book())
    late, trades = Books("b"), Trades()
    runner.add(late, frozenset({BTC}))
    runner.add(trades, None)
    bus.publish(book())
    bus.publish(trade())
    assert (first.books, late.books, trades.trades) == (2, 1, 1)


class ReadsTheBook(Strategy):
    def __init__(self) -> None:
        super().__init__("reader", {})
        self.seen: list[tuple[bool, int, int]] = []

    def on_book(self, event: BookUpdated) -> None:
        view = self.ctx.book(event.instrument)
        assert view is not None and self.ctx.book(InstrumentId("X", "y")) is None
        self.seen.append((view.valid, view.bid_units, view.ask_units))


def test_a_strategy_reads_the_synced_book_through_the_one_read_only_view() -> None:
    from tests.unit.book.test_order_book import INST, book

    l2 = book([(100, 5)], [(103, 2)])
    l2.valid = True
    bus = Bus()
    runner = StrategyRunner(bus, SimClock(0), Flat(), {INST.id: INST}, books={INST.id: l2})
    reader = ReadsTheBook()
    runner.add(reader, None)
    runner.start()
    bus.publish(BookUpdated(instrument=INST.id, best_bid=0.001, best_bid_size=0.005,
                            best_ask=0.00103, best_ask_size=0.002, ts_event=0, ts_init=0))
    assert reader.seen == [(True, 100, 103)]
