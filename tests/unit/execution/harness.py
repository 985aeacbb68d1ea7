"""A small simulated venue around real components: SimClock, Bus, OrderBook, engine, portfolio."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np

from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeeConfig, LatencyConfig, PaperConfig
from tradebot.domain import Instrument, InstrumentId, MarketKind, OrderStatus, OrderType, Side
from tradebot.events import (
    BookUpdated,
    Fill,
    OrderIntent,
    OrderUpdated,
    SubmitOrder,
    TimeInForce,
    Trade,
    TriggerType,
)
from tradebot.execution.engine import ExecutionEngine
from tradebot.execution.paper import PaperVenue
from tradebot.order import OrderSpec
from tradebot.portfolio.portfolio import Portfolio

PERP = Instrument(id=InstrumentId("TEST-USDT-PERP", "sim"), venue_symbol="TESTUSDT",
                  kind=MarketKind.LINEAR_PERP, base="TEST", quote="USDT",
                  tick_size=Decimal("0.1"), lot_size=Decimal("0.001"),
                  min_notional=Decimal(10))
SPOT = Instrument(id=InstrumentId("TEST-USDT", "simspot"), venue_symbol="TESTUSDT",
                  kind=MarketKind.SPOT, base="TEST", quote="USDT", tick_size=Decimal("0.01"),
                  lot_size=Decimal("0.01"), min_notional=Decimal(10))
FEES = {"sim": FeeConfig(maker=Decimal("0.0002"), taker=Decimal("0.0005")),
        "simspot": FeeConfig(maker=Decimal("0.001"), taker=Decimal("0.001"))}
START_NS = 1_700_000_000_000_000_000
MS = 1_000_000


def latency(entry_ms: float, response_ms: float) -> dict[str, LatencyConfig]:
    """Return constant latency for both test venues."""
    cfg = LatencyConfig(distribution="constant", entry_ms=entry_ms, response_ms=response_ms)
    return {"sim": cfg, "simspot": cfg}


class Harness:
    """Drive the paper venue by hand: set book levels, print trades, submit orders."""

    def __init__(self, **paper: Any) -> None:
        paper.setdefault("fees", FEES)
        paper.setdefault("latency", {})
        self.config = PaperConfig(**paper)
        self.clock = SimClock(START_NS)
        self.bus = bus = Bus()
        self.instruments = {PERP.id: PERP, SPOT.id: SPOT}
        self.books = {iid: OrderBook(i) for iid, i in self.instruments.items()}
        for book in self.books.values():
            book.valid = True  # no feed syncs these: the test sets the levels by hand
        self.portfolio = Portfolio(bus, self.clock, self.instruments, "USDT", Decimal(10_000),
                                   3600.0)
        self.portfolio.start()
        self.engine = ExecutionEngine(bus, self.clock)
        self.venue = PaperVenue(self.engine, self.clock, bus, self.books, self.instruments,
                                self.config, self.portfolio)
        self.engine.attach(self.venue)
        self.engine.start()
        self.venue.start()
        self.fills: list[Fill] = []
        self.updates: list[OrderUpdated] = []
        bus.subscribe(Fill, self.fills.append)
        bus.subscribe(OrderUpdated, self.updates.append)
        self._n = 0

    def levels(self, inst: Instrument, bids: list[tuple[str, str]] = (),  # type: ignore[assignment]
               asks: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        """Set price levels (size "0" deletes) and publish the book update."""
        rows = [(1, p, s) for p, s in bids] + [(-1, p, s) for p, s in asks]
        arr = np.array([[side, int(Decimal(p).scaleb(inst.price_decimals)),
                         int(Decimal(s).scaleb(inst.size_decimals))] for side, p, s in rows],
                       np.int64).reshape(-1, 3)
        book = self.books[inst.id]
        book.apply(arr, arr.shape[0])
        self.bus.publish(BookUpdated(instrument=inst.id, best_bid=book.best_bid,
                                     best_bid_size=0.0, best_ask=book.best_ask,
                                     best_ask_size=0.0, ts_event=self.clock.now_ns(),
                                     ts_init=self.clock.now_ns()))

    def trade(self, inst: Instrument, price: str, size: str, aggressor: Side) -> None:
        """Print a public trade."""
        self._n += 1
        now = self.clock.now_ns()
        self.bus.publish(Trade(instrument=inst.id, price=float(price), size=float(size),
                               aggressor=aggressor, trade_id=str(self._n), ts_event=now,
                               ts_init=now))

    def submit(self, inst: Instrument, side: Side, qty: str, order_type: OrderType,
               limit: str | None = None, **extra: Any) -> str:
        """Send an order straight to the engine (risk is tested elsewhere); return its id."""
        self._n += 1
        now = self.clock.now_ns()
        spec = OrderSpec(strategy=extra.pop("strategy", "t"), instrument=inst.id, side=side,
                         quantity=Decimal(qty), order_type=order_type,
                         limit_price=Decimal(limit) if limit is not None else None, **extra)
        intent = OrderIntent(intent_id=f"i{self._n}", spec=spec, ts_event=now, ts_init=now)
        order_id = f"O{self._n}"
        self.bus.publish(SubmitOrder(order_id=order_id, intent=intent, ts_event=now,
                                     ts_init=now))
        return order_id

    def limit(self, inst: Instrument, side: Side, qty: str, price: str,
              tif: TimeInForce = TimeInForce.GTC, post_only: bool = False) -> str:
        """Send a limit order."""
        return self.submit(inst, side, qty, OrderType.LIMIT, price, time_in_force=tif,
                           post_only=post_only)

    def stop(self, inst: Instrument, side: Side, qty: str, trigger: str,
             kind: TriggerType = TriggerType.STOP, limit: str | None = None) -> str:
        """Send a conditional order (market unless `limit`)."""
        return self.submit(inst, side, qty, OrderType.LIMIT if limit else OrderType.MARKET,
                           limit, trigger=kind, trigger_price=Decimal(trigger))

    def advance(self, ms: float) -> None:
        """Move simulated time forward, running due timers."""
        self.clock.advance_to(self.clock.now_ns() + int(ms * MS))

    def status(self, order_id: str) -> OrderStatus:
        """Return the engine's status of an order."""
        return self.engine.orders[order_id].status

    def reason(self, order_id: str) -> str:
        """Return the engine's reason for an order's state."""
        return self.engine.orders[order_id].reason

    def fills_of(self, order_id: str) -> list[Fill]:
        """Return the fills of one order."""
        return [f for f in self.fills if f.order_id == order_id]
