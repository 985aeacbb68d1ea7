"""Matching of simulated orders against the venue's L2 book and public trades.

- A marketable order walks the opposite side level by level at arrival and pays each level's
  price; what it took is remembered per level (`Taken`) and subtracted from later walks until
  the venue next updates that level (its displayed size changes).
- A resting limit order joins the back of its level (queue ahead = displayed size), is advanced
  by trades at its price, and is moved by the queue model when the displayed size changes.
  A trade at its price fills it by what the print's volume reaches past the queue ahead (and
  past our own earlier orders at that price); a trade through its price fills it fully; an
  opposite side that crosses its price fills it against the liquidity shown at or through it.
- Conditional orders wait for a trade at their trigger, then execute as market or limit.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

import numpy as np

from tradebot.book import TOP_ASK, TOP_BID, BookView
from tradebot.core.book import level_sizes
from tradebot.domain import InstrumentId, Liquidity
from tradebot.events import TimeInForce
from tradebot.execution.orders import InstrumentOrders, SimOrder
from tradebot.execution.queue import QueueModel, trade_fill

Levels = list[tuple[int, int]]


class FillSink(Protocol):
    """Where the matcher sends what happened (the venue turns it into reports)."""

    def fill(self, order: SimOrder, units: int, price: Decimal, liquidity: Liquidity,
             levels: Levels, model: str, ahead: int | None, ts_event: int,
             delay_ns: int) -> None:
        """Record a fill of `units` at `price` (levels: contra (price, units) taken)."""

    def close(self, order: SimOrder, reason: str, ts_event: int, delay_ns: int) -> None:
        """Cancel the rest of an order."""

    def triggered(self, order: SimOrder, ts_event: int) -> None:
        """A conditional order's trigger traded."""


class Matcher:
    """Per-instrument order sets and the matching rules over them."""

    def __init__(self, books: Mapping[InstrumentId, BookView], queue: QueueModel,
                 sink: FillSink) -> None:
        self._books = books
        self.queue = queue
        self._sink = sink
        self.sets: dict[InstrumentId, InstrumentOrders] = {}
        self._seq = itertools.count(1)
        self._one = (np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64))

    def orders_of(self, iid: InstrumentId) -> InstrumentOrders:
        """Return (creating) the order set of an instrument."""
        st = self.sets.get(iid)
        if st is None:
            st = self.sets[iid] = InstrumentOrders()
        return st

    # --- queries ------------------------------------------------------------------------

    def size_at(self, book: BookView, row: int, price: int) -> int:
        """Return the displayed size at one price of a side (0 bids, 1 asks)."""
        rows, prices, out = self._one
        rows[0] = row
        prices[0] = price
        level_sizes(book.keys, book.sizes, book.counts, rows, prices, 1, out)
        return int(out[0])

    def marketable(self, o: SimOrder, book: BookView) -> bool:
        """Return True when a limit order would take liquidity now."""
        top = book.top
        if o.side == 1:
            return bool(top[TOP_ASK] > 0 and o.limit >= top[TOP_ASK])
        return bool(top[TOP_BID] > 0 and o.limit <= top[TOP_BID])

    def available(self, o: SimOrder, book: BookView) -> int:
        """Return the units the order could take now within its limit (taken liquidity out)."""
        return sum(units for _, units in self._walk(o, book, o.remaining, commit=False))

    # --- order flow -----------------------------------------------------------------------

    def execute(self, o: SimOrder, book: BookView, ts: int, delay_ns: int) -> None:
        """Run an accepted (or just triggered) order against the book; rest or close the rest."""
        if o.is_market:
            self._take(o, book, ts, delay_ns)
            if not o.closed and o.remaining > 0:
                self._sink.close(o, "insufficient_liquidity", ts, delay_ns)
            return
        if o.tif is TimeInForce.FOK and self.available(o, book) < o.remaining:
            self._sink.close(o, "fok_not_filled", ts, delay_ns)
            return
        if self.marketable(o, book):
            self._take(o, book, ts, delay_ns)
        if o.closed or o.remaining == 0:
            return
        if o.tif is not TimeInForce.GTC:
            self._sink.close(o, "ioc_remainder", ts, delay_ns)
            return
        self.rest(o, book)

    def rest(self, o: SimOrder, book: BookView | None) -> None:
        """Put an order at the back of its level (`book` None: queue unknown until a book)."""
        o.seq = next(self._seq)
        if book is None:
            o.ahead = o.ahead_entry = -1
        else:
            o.level = self.size_at(book, o.row, o.limit)
            o.ahead = o.ahead_entry = o.level
        o.traded = 0
        self.orders_of(o.inst.id).add(o)

    def wait(self, o: SimOrder) -> None:
        """Hold a conditional order until its trigger trades."""
        self.orders_of(o.inst.id).waiting.append(o)

    def remove(self, o: SimOrder) -> None:
        """Take an order out of its instrument's sets."""
        st = self.sets.get(o.inst.id)
        if st is not None:
            st.remove(o)

    def _walk(self, o: SimOrder, book: BookView, want: int, commit: bool) -> Levels:
        st = self.orders_of(o.inst.id)
        row = 1 if o.side == 1 else 0
        extra = st.taken_total(row) if st.taken else 0
        raw = book.walk(o.side, want + extra, o.limit)
        got: Levels = []
        left = want
        for price, size in raw.tolist():
            if left <= 0:
                break
            avail = size - st.taken_at(row, price)
            if avail <= 0:
                continue
            units = min(left, avail)
            got.append((price, units))
            left -= units
            if commit:
                st.take(row, price, units, self.size_at(book, row, price))
        return got

    def _take(self, o: SimOrder, book: BookView, ts: int, delay_ns: int) -> None:
        got = self._walk(o, book, o.remaining, commit=True)
        units = sum(u for _, u in got)
        if units <= 0:
            return
        inst = o.inst
        notional = sum((inst.price_from_units(p) * inst.size_from_units(u) for p, u in got),
                       Decimal(0))
        price = notional / inst.size_from_units(units)
        self._sink.fill(o, units, price, Liquidity.TAKER, got, "taker_walk", None, ts, delay_ns)

    # --- market data ----------------------------------------------------------------------

    def on_book(self, iid: InstrumentId, ts: int) -> None:
        """Move queues by the displayed sizes, forget refreshed taken levels, fill crossings."""
        st = self.sets.get(iid)
        if st is None or st.idle:
            return
        book = self._books.get(iid)
        if book is None or not book.valid:
            return
        if st.dirty:
            st.rebuild()
        n = st.rows.shape[0]
        level_sizes(book.keys, book.sizes, book.counts, st.rows, st.prices, n, st.out)
        self._update_queues(st)
        nr = len(st.resting)
        for j, key in enumerate(st.taken_keys):
            if int(st.out[nr + j]) != st.taken[key].seen:
                del st.taken[key]
                st.dirty = True
        top = book.top
        if (st.max_bid and top[TOP_ASK] and st.max_bid >= top[TOP_ASK]) or \
                (st.min_ask and top[TOP_BID] and st.min_ask <= top[TOP_BID]):
            self._cross(st, book, ts)

    def _update_queues(self, st: InstrumentOrders) -> None:
        # Only the orders whose level changed since the last look cost Python time.
        nr = len(st.resting)
        out, known = st.out, st.known
        changed = np.flatnonzero(out[:nr] != known)
        queue = self.queue
        for i in changed.tolist():
            o = st.resting[i]
            new = int(out[i])
            if o.ahead < 0:
                # Restored after a restart: the queue position is recomputed from this book.
                o.ahead = o.ahead_entry = new
            else:
                o.ahead = queue.on_level_change(o.ahead, o.level, new, o.traded)
            o.level = new
            o.traded = 0
            known[i] = new

    def _cross(self, st: InstrumentOrders, book: BookView, ts: int) -> None:
        top = book.top
        ask, bid = top[TOP_ASK], top[TOP_BID]
        bids = sorted((o for o in st.resting if o.side == 1 and ask and o.limit >= ask),
                      key=lambda o: (-o.limit, o.seq))
        asks = sorted((o for o in st.resting if o.side == -1 and bid and o.limit <= bid),
                      key=lambda o: (o.limit, o.seq))
        for o in bids + asks:
            got = self._walk(o, book, o.remaining, commit=True)
            units = sum(u for _, u in got)
            if units > 0:
                self._sink.fill(o, units, o.inst.price_from_units(o.limit), Liquidity.MAKER,
                                got, "cross", 0, ts, 0)

    def on_trade(self, iid: InstrumentId, price: int, size: int, aggressor: int,
                 ts: int) -> None:
        """Fire triggers at this price, then advance and fill resting orders on the passive side."""
        st = self.orders_of(iid)
        st.last_trade = price
        if st.waiting:
            self._fire(st, iid, price, ts)
        if not st.resting:
            return
        passive = -aggressor
        if passive == 1:
            hit = sorted((o for o in st.resting if o.side == 1 and o.limit >= price
                          and o.ahead >= 0), key=lambda o: (-o.limit, o.seq))
        else:
            hit = sorted((o for o in st.resting if o.side == -1 and o.limit <= price
                          and o.ahead >= 0), key=lambda o: (o.limit, o.seq))
        consumed = 0
        for o in hit:
            ahead = o.ahead
            if o.limit != price:
                self._sink.fill(o, o.remaining, o.inst.price_from_units(o.limit),
                                Liquidity.MAKER, [(price, o.remaining)], "trade_through",
                                ahead, ts, 0)
                continue
            o.traded += size
            o.ahead, units = trade_fill(ahead, size, consumed, o.remaining)
            if units > 0:
                consumed += units
                self._sink.fill(o, units, o.inst.price_from_units(o.limit), Liquidity.MAKER,
                                [(price, units)], "queue", ahead, ts, 0)

    def _fire(self, st: InstrumentOrders, iid: InstrumentId, price: int, ts: int) -> None:
        book = self._books.get(iid)
        for o in [o for o in st.waiting if o.fires(price)]:
            st.waiting.remove(o)
            o.triggered = True
            self._sink.triggered(o, ts)
            if book is None or not book.valid:
                self._sink.close(o, "book_invalid_at_trigger", ts, 0)
                continue
            if o.order.spec.post_only and self.marketable(o, book):
                self._sink.close(o, "post_only_would_cross", ts, 0)
                continue
            self.execute(o, book, ts, 0)
