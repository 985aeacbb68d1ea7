"""Local L2 books and the state machine that keeps them bridged to the venue's sequence.

A book is SYNCED (valid, published) or BUFFERING (no snapshot yet) or RESYNCING (a gap, a
crossed book, a stale or lost stream made it invalid). While not synced, deltas are buffered and
a snapshot is requested; the venue's `SequenceRule` decides how the snapshot bridges the
buffered deltas and whether each later delta continues the chain. An invalid book is never
published, so no strategy sees it and no paper order fills against it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

import numpy as np
import structlog
from prometheus_client import Counter, Gauge

from tradebot.bus import Bus
from tradebot.core import book as kbook
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import InvariantError
from tradebot.events import BookDelta, BookInvalidated, BookSnapshot, BookUpdated

log = structlog.get_logger(__name__)

BOOK_GAPS = Counter("tradebot_book_gaps_total", "Sequence gaps detected", ["venue", "symbol"])
BOOK_RESYNCS = Counter(
    "tradebot_book_resyncs_total", "Book rebuilds started, by reason", ["venue", "symbol", "reason"]
)
BOOK_VALID = Gauge("tradebot_book_valid", "1 when the local book is synced", ["venue", "symbol"])
BOOK_BUFFER_OVERFLOWS = Counter(
    "tradebot_book_buffer_overflows_total",
    "Delta buffers that overflowed while waiting for a snapshot", ["venue", "symbol"],
)

Verdict = Literal["apply", "drop", "gap"]


class SequenceRule(Protocol):
    """A venue's rules for bridging a snapshot to its deltas and chaining deltas."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first buffered delta after a snapshot with id `snapshot_seq`."""

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after the delta whose last id was `last_applied`."""


class BookState(StrEnum):
    """Where a book stands."""

    BUFFERING = "buffering"
    SYNCED = "synced"
    RESYNCING = "resyncing"


class OrderBook:
    """The arrays of one L2 book and read-only queries over them."""

    def __init__(self, instrument: Instrument, capacity: int = 2048) -> None:
        self.instrument = instrument
        self.keys, self.sizes, self.counts, self.top = kbook.new_book(capacity)
        self._px_div = float(10**instrument.price_decimals)
        self._sz_div = float(10**instrument.size_decimals)

    def apply(self, levels: np.ndarray, n: int) -> int:
        """Apply `levels[:n]`, growing the arrays when full; return the kernel status."""
        status = kbook.book_apply(self.keys, self.sizes, self.counts, levels, n, self.top)
        while status == kbook.CAPACITY:
            self._grow(int(self.counts.max()) + n)
            status = kbook.book_apply(self.keys, self.sizes, self.counts, levels, n, self.top)
        return status

    def _grow(self, needed: int) -> None:
        cap = max(needed, 2 * self.keys.shape[1])
        for name in ("keys", "sizes"):
            old = getattr(self, name)
            new = np.zeros((2, cap), np.int64)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)

    def clear(self) -> None:
        """Remove every level."""
        kbook.book_clear(self.counts, self.top)

    @property
    def best_bid(self) -> float:
        """Best bid price as a float (0.0 when the side is empty)."""
        return float(self.top[0]) / self._px_div

    @property
    def best_ask(self) -> float:
        """Best ask price as a float (0.0 when the side is empty)."""
        return float(self.top[2]) / self._px_div

    def mid_price(self) -> Decimal | None:
        """Return the exact mid price, or None when a side is empty."""
        if self.counts[0] == 0 or self.counts[1] == 0:
            return None
        return self.instrument.price_from_units(int(self.top[0]) + int(self.top[2])) / 2

    def levels(self, side: int, depth: int) -> list[tuple[Decimal, Decimal]]:
        """Return the best `depth` levels of a side (1 bids, -1 asks) as exact Decimals."""
        out = np.zeros((depth, 2), np.int64)
        k = kbook.book_levels(self.keys, self.sizes, self.counts, 0 if side == 1 else 1, depth, out)
        inst = self.instrument
        return [(inst.price_from_units(int(p)), inst.size_from_units(int(s))) for p, s in out[:k]]

    def walk(self, taker_side: int, quantity_units: int, limit_units: int = 0) -> np.ndarray:
        """Return the (price units, size units) a taker would take, best level first."""
        out = np.zeros((int(self.counts.max()) + 1, 2), np.int64)
        k = kbook.book_walk(self.keys, self.sizes, self.counts, taker_side, quantity_units,
                            limit_units, out)
        return out[:k]


class BookSync:
    """Keep one OrderBook bridged to its venue stream; publish it only while it is valid."""

    def __init__(self, instrument: Instrument, rule: SequenceRule, bus: Bus, *,
                 request_snapshot: Callable[[InstrumentId, str], None],
                 max_buffer: int = 10_000) -> None:
        self.instrument = instrument
        self.book = OrderBook(instrument)
        self.rule = rule
        self.state = BookState.BUFFERING
        self.last_seq = -1
        self.gaps = 0
        self.resyncs = 0
        self.snapshots = 0
        self.stale_dropped = 0
        self.last_update_ns = 0
        self._bridged = False
        self._bus = bus
        self._request_snapshot = request_snapshot
        self._buffer: deque[BookDelta] = deque()
        self._max_buffer = max_buffer
        venue, symbol = instrument.id.venue, instrument.id.symbol
        self._gap_metric = BOOK_GAPS.labels(venue, symbol)
        self._valid_metric = BOOK_VALID.labels(venue, symbol)
        self._overflow_metric = BOOK_BUFFER_OVERFLOWS.labels(venue, symbol)
        self._valid_metric.set(0)

    @property
    def valid(self) -> bool:
        """Return True while the book is synced."""
        return self.state is BookState.SYNCED

    def on_delta(self, levels: np.ndarray, n: int, first: int, last: int, prev: int,
                 ts_event: int, ts_init: int) -> None:
        """Take one venue delta whose levels are `levels[:n]` (a scratch array, not kept)."""
        if self.state is not BookState.SYNCED:
            self._buffer_delta(levels[:n].copy(), first, last, prev, ts_event, ts_init)
            return
        if self._bridged:
            verdict = self.rule.follow(self.last_seq, first, last, prev)
        else:
            verdict = self.rule.bridge(self.last_seq, first, last, prev)
            self._bridged = verdict == "apply"
        if verdict == "drop":
            self.stale_dropped += 1
            return
        if verdict == "gap":
            self._gap(first, last, prev, ts_event, ts_init)
            self._buffer_delta(levels[:n].copy(), first, last, prev, ts_event, ts_init)
            return
        self._apply(levels, n, last, ts_event, ts_init)

    def on_snapshot(self, snapshot: BookSnapshot) -> None:
        """Load a snapshot and bridge the buffered deltas to it."""
        self.snapshots += 1
        book = self.book
        book.clear()
        levels = _snapshot_levels(snapshot)
        status = book.apply(levels, levels.shape[0])
        if status != kbook.OK:
            self._invalidate(f"snapshot_status_{status}", snapshot.ts_event, snapshot.ts_init)
            return
        self.last_seq = snapshot.sequence
        buffered, self._buffer = self._buffer, deque()
        bridged = False
        for delta in buffered:
            if not bridged:
                verdict = self.rule.bridge(snapshot.sequence, delta.first_seq, delta.last_seq,
                                           delta.prev_seq)
                if verdict == "drop":
                    self.stale_dropped += 1
                    continue
                if verdict == "gap":
                    # The snapshot is older than the stream we hold: it cannot bridge.
                    self._buffer = buffered
                    self._resync("snapshot_behind", snapshot.ts_event, snapshot.ts_init)
                    return
                bridged = True
            elif (verdict := self.rule.follow(self.last_seq, delta.first_seq, delta.last_seq,
                                              delta.prev_seq)) != "apply":
                if verdict == "drop":
                    continue
                self._gap(delta.first_seq, delta.last_seq, delta.prev_seq, delta.ts_event,
                          delta.ts_init)
                return
            status = book.apply(delta.levels, delta.levels.shape[0])
            if status != kbook.OK:
                self._invalidate(f"book_status_{status}", delta.ts_event, delta.ts_init)
                return
            self.last_seq = delta.last_seq
        if self.state is BookState.RESYNCING:
            self.resyncs += 1
        self._bridged = bridged
        self.state = BookState.SYNCED
        self._valid_metric.set(1)
        log.info("book_synced", instrument=str(self.instrument.id), sequence=self.last_seq,
                 buffered=len(buffered), resyncs=self.resyncs)
        self._publish(snapshot.ts_event, snapshot.ts_init)

    def invalidate(self, reason: str, ts_event: int, ts_init: int) -> None:
        """Mark the book invalid (stale stream, disconnect) and ask for a rebuild."""
        if self.state is BookState.SYNCED:
            self._resync(reason, ts_event, ts_init)

    def reset(self, reason: str, ts_event: int, ts_init: int) -> None:
        """Forget everything (a new connection): buffer from scratch and wait for a snapshot."""
        was_valid = self.state is BookState.SYNCED
        self._buffer.clear()
        self.book.clear()
        self.state = BookState.RESYNCING if self.snapshots else BookState.BUFFERING
        self._valid_metric.set(0)
        if was_valid:
            BOOK_RESYNCS.labels(self.instrument.id.venue, self.instrument.id.symbol, reason).inc()
            self._bus.publish(BookInvalidated(instrument=self.instrument.id, reason=reason,
                                              ts_event=ts_event, ts_init=ts_init))

    def _apply(self, levels: np.ndarray, n: int, last: int, ts_event: int, ts_init: int) -> None:
        status = self.book.apply(levels, n)
        if status == kbook.OK:
            self.last_seq = last
            self._publish(ts_event, ts_init)
        elif status == kbook.CROSSED:
            self.last_seq = last
            self._resync("crossed", ts_event, ts_init)
        else:
            raise InvariantError(
                f"{self.instrument.id}: negative price or size reached the book (status {status})"
            )

    def _publish(self, ts_event: int, ts_init: int) -> None:
        book = self.book
        self.last_update_ns = ts_init
        inst = self.instrument
        self._bus.publish(BookUpdated(
            instrument=inst.id, best_bid=book.best_bid,
            best_bid_size=float(book.top[1]) / book._sz_div, best_ask=book.best_ask,
            best_ask_size=float(book.top[3]) / book._sz_div, ts_event=ts_event, ts_init=ts_init,
        ))

    def _buffer_delta(self, levels: np.ndarray, first: int, last: int, prev: int,
                      ts_event: int, ts_init: int) -> None:
        if len(self._buffer) >= self._max_buffer:
            self._overflow_metric.inc()
            log.warning("book_buffer_overflowed", instrument=str(self.instrument.id),
                        size=self._max_buffer)
            self._buffer.clear()
            self._request_snapshot(self.instrument.id, "buffer_overflow")
        self._buffer.append(BookDelta(
            instrument=self.instrument.id, levels=levels, first_seq=first, last_seq=last,
            prev_seq=prev, ts_event=ts_event, ts_init=ts_init,
        ))

    def _gap(self, first: int, last: int, prev: int, ts_event: int, ts_init: int) -> None:
        self.gaps += 1
        self._gap_metric.inc()
        log.warning("book_gap_detected", instrument=str(self.instrument.id),
                    expected_after=self.last_seq, first=first, last=last, prev=prev)
        self._resync("gap", ts_event, ts_init)

    def _invalidate(self, reason: str, ts_event: int, ts_init: int) -> None:
        self._resync(reason, ts_event, ts_init)

    def _resync(self, reason: str, ts_event: int, ts_init: int) -> None:
        was_valid = self.state is BookState.SYNCED
        self.state = BookState.RESYNCING
        self._valid_metric.set(0)
        BOOK_RESYNCS.labels(self.instrument.id.venue, self.instrument.id.symbol, reason).inc()
        if was_valid:
            self._bus.publish(BookInvalidated(instrument=self.instrument.id, reason=reason,
                                              ts_event=ts_event, ts_init=ts_init))
        log.warning("book_invalidated", instrument=str(self.instrument.id), reason=reason)
        self._request_snapshot(self.instrument.id, reason)


def _snapshot_levels(snapshot: BookSnapshot) -> np.ndarray:
    nb, na = snapshot.bids.shape[0], snapshot.asks.shape[0]
    levels = np.empty((nb + na, 3), np.int64)
    levels[:nb, 0] = 1
    levels[:nb, 1:] = snapshot.bids
    levels[nb:, 0] = -1
    levels[nb:, 1:] = snapshot.asks
    return levels
