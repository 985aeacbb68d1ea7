"""The simulated venue's working state: orders in integer units, per-instrument order sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from tradebot.domain import Instrument, OrderType, TimeInForce, TriggerType
from tradebot.order import Order


@dataclass(slots=True, eq=False)
class SimOrder:
    """One order at the simulated venue; sizes in size units, prices in price units."""

    order: Order
    inst: Instrument
    qty: int
    limit: int  # 0: market
    trigger: int  # 0: no trigger
    entry_latency_ns: int
    response_latency_ns: int
    filled: int = 0
    seq: int = 0  # queue priority among our own orders at one price
    arrived: bool = False
    triggered: bool = False
    closed: bool = False
    arrival_mid: Decimal | None = None
    ahead: int = -1  # venue queue ahead; -1: unknown until a valid book is seen (restart)
    ahead_entry: int = -1
    level: int = 0  # displayed size at the order's price when last looked at
    traded: int = 0  # volume traded at the price since `level` was observed

    @property
    def side(self) -> int:
        """Return 1 for a buy, -1 for a sell."""
        return int(self.order.spec.side)

    @property
    def row(self) -> int:
        """Return the book row of the order's own price level (0 bids, 1 asks)."""
        return 0 if self.side == 1 else 1

    @property
    def remaining(self) -> int:
        """Return the unfilled size units."""
        return self.qty - self.filled

    @property
    def is_market(self) -> bool:
        """Return True for an order that takes at any price (market, stop-market, TP)."""
        return self.order.spec.order_type is OrderType.MARKET

    @property
    def tif(self) -> TimeInForce:
        """Return the time in force."""
        return self.order.spec.time_in_force

    def fires(self, last_price: int) -> bool:
        """Return True when a trade at `last_price` triggers this conditional order."""
        if self.trigger <= 0 or last_price <= 0:
            return False
        up = last_price >= self.trigger
        down = last_price <= self.trigger
        stop = self.order.spec.trigger is TriggerType.STOP
        if self.side == 1:
            return up if stop else down
        return down if stop else up


@dataclass(slots=True)
class Taken:
    """Liquidity our orders took from a level: it stays taken until the venue updates it."""

    units: int
    seen: int  # the level's displayed size when we took from it


@dataclass(slots=True)
class InstrumentOrders:
    """The resting and waiting orders of one instrument, with arrays for the level kernel."""

    resting: list[SimOrder] = field(default_factory=list)
    waiting: list[SimOrder] = field(default_factory=list)  # conditional, not yet triggered
    taken: dict[tuple[int, int], Taken] = field(default_factory=dict)
    last_trade: int = 0
    dirty: bool = True
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    prices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    out: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    known: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    taken_keys: list[tuple[int, int]] = field(default_factory=list)
    max_bid: int = 0
    min_ask: int = 0

    def rebuild(self) -> None:
        """Refresh the query arrays after the order set or the taken levels changed."""
        self.taken_keys = list(self.taken)
        n = len(self.resting) + len(self.taken_keys)
        self.rows = np.empty(n, np.int64)
        self.prices = np.empty(n, np.int64)
        self.out = np.empty(n, np.int64)
        self.known = np.empty(len(self.resting), np.int64)
        for i, o in enumerate(self.resting):
            self.rows[i] = o.row
            self.prices[i] = o.limit
            self.known[i] = o.level if o.ahead >= 0 else -1
        for j, (row, price) in enumerate(self.taken_keys, start=len(self.resting)):
            self.rows[j] = row
            self.prices[j] = price
        bids = [o.limit for o in self.resting if o.side == 1]
        asks = [o.limit for o in self.resting if o.side == -1]
        self.max_bid = max(bids, default=0)
        self.min_ask = min(asks, default=0)
        self.dirty = False

    def add(self, order: SimOrder) -> None:
        """Rest an order (its queue fields already set)."""
        self.resting.append(order)
        self.dirty = True

    def remove(self, order: SimOrder) -> None:
        """Stop resting or waiting an order."""
        if order in self.resting:
            self.resting.remove(order)
            self.dirty = True
        elif order in self.waiting:
            self.waiting.remove(order)

    def take(self, row: int, price: int, units: int, seen: int) -> None:
        """Remember `units` taken from the level (row, price) showing `seen`."""
        mark = self.taken.get((row, price))
        if mark is None:
            self.taken[(row, price)] = Taken(units, seen)
            self.dirty = True
        else:
            mark.units += units

    def taken_at(self, row: int, price: int) -> int:
        """Return the units already taken from a level."""
        mark = self.taken.get((row, price))
        return mark.units if mark is not None else 0

    def taken_total(self, row: int) -> int:
        """Return the units taken from a whole side."""
        return sum(m.units for (r, _), m in self.taken.items() if r == row)

    @property
    def idle(self) -> bool:
        """Return True when book updates need no work for this instrument."""
        return not self.resting and not self.taken
