"""The state machine that keeps each local L2 book bridged to the venue's sequence.

A book is SYNCED (valid, published) or BUFFERING (no snapshot yet) or RESYNCING (a gap, a
crossed book, a checksum mismatch, a stale or lost stream made it invalid). While not synced,
deltas are buffered and a snapshot is requested; the venue's `SequenceRule` decides how the
snapshot bridges the buffered deltas and whether each later delta continues the chain. An
invalid book is never published, so no strategy sees it and no paper order fills against it:
the book's `valid` flag (what readers of its `BookView` check) follows the state.

Venues with a book checksum set `BookSync.checker`; a delta or snapshot that carries the
venue's checksum is verified after it is applied, and a mismatch invalidates the book. Venues
that resync by a new websocket snapshot rather than a REST bridge set `buffering = False`:
deltas that arrive while the book is invalid are then dropped, since the next snapshot
supersedes them. A snapshot is authoritative whenever it arrives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Literal, Protocol

import numpy as np
import structlog
from prometheus_client import Counter, Gauge

from tradebot.book import TOP_ASK, TOP_ASK_SIZE, TOP_BID, TOP_BID_SIZE, OrderBook
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
BOOK_CHECKSUM_FAILURES = Counter(
    "tradebot_book_checksum_failures_total", "Books whose venue checksum did not match",
    ["venue", "symbol"],
)
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


class BookChecker(Protocol):
    """Compute a venue's checksum of a local book."""

    def checksum(self, book: OrderBook) -> int:
        """Return the checksum the venue would send for `book`."""


class BookState(StrEnum):
    """Where a book stands."""

    BUFFERING = "buffering"
    SYNCED = "synced"
    RESYNCING = "resyncing"


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
        self.last_message_ns = 0
        self.checksums_ok = 0
        self.checksums_failed = 0
        self.discarded = 0
        # Set by the venue: its checksum, the depth it maintains, whether deltas bridge.
        self.checker: BookChecker | None = None
        self.max_depth = 0
        self.buffering = True
        self._bridged = False
        self._bus = bus
        self._request_snapshot = request_snapshot
        self._buffer: deque[BookDelta] = deque()
        self._buffer_checksums: deque[int | None] = deque()  # beside _buffer, item by item
        self._max_buffer = max_buffer
        venue, symbol = instrument.id.venue, instrument.id.symbol
        self._gap_metric = BOOK_GAPS.labels(venue, symbol)
        self._valid_metric = BOOK_VALID.labels(venue, symbol)
        self._overflow_metric = BOOK_BUFFER_OVERFLOWS.labels(venue, symbol)
        self._checksum_metric = BOOK_CHECKSUM_FAILURES.labels(venue, symbol)
        self._valid_metric.set(0)

    @property
    def valid(self) -> bool:
        """Return True while the book is synced."""
        return self.state is BookState.SYNCED

    def on_delta(self, levels: np.ndarray, n: int, first: int, last: int, prev: int,
                 ts_event: int, ts_init: int, checksum: int | None = None) -> None:
        """Take one venue delta whose levels are `levels[:n]` (a scratch array, not kept).

        `checksum` is the venue's checksum of the book after this delta, None when absent.
        """
        self.last_message_ns = ts_init
        if self.state is not BookState.SYNCED:
            if self.buffering:
                self._buffer_delta(levels[:n].copy(), first, last, prev, ts_event, ts_init,
                                   checksum)
            else:
                self.discarded += 1
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
            if self.buffering:
                self._buffer_delta(levels[:n].copy(), first, last, prev, ts_event, ts_init,
                                   checksum)
            return
        self._apply(levels, n, last, ts_event, ts_init, checksum)

    def on_snapshot(self, snapshot: BookSnapshot, checksum: int | None = None) -> None:
        """Load a snapshot (authoritative at any time) and bridge the buffered deltas to it.

        `checksum` is the venue's checksum of the snapshot's book, None when absent.
        """
        self.snapshots += 1
        self.last_message_ns = snapshot.ts_init
        self.book.clear()
        levels = _snapshot_levels(snapshot)
        if not self._load(levels, checksum, snapshot.ts_event, snapshot.ts_init):
            self._clear_buffer()
            return
        self.last_seq = snapshot.sequence
        buffered, self._buffer = self._buffer, deque()
        checksums, self._buffer_checksums = self._buffer_checksums, deque()
        bridged = False
        for delta, delta_checksum in zip(buffered, checksums, strict=True):
            if not bridged:
                verdict = self.rule.bridge(snapshot.sequence, delta.first_seq, delta.last_seq,
                                           delta.prev_seq)
                if verdict == "drop":
                    self.stale_dropped += 1
                    continue
                if verdict == "gap":
                    # The snapshot is older than the stream we hold: it cannot bridge.
                    self._buffer, self._buffer_checksums = buffered, checksums
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
            if not self._load(delta.levels, delta_checksum, delta.ts_event, delta.ts_init):
                return
            self.last_seq = delta.last_seq
        self._bridged = bridged
        self._mark_synced(len(buffered))
        self._publish(snapshot.ts_event, snapshot.ts_init)

    def _mark_synced(self, buffered: int) -> None:
        if self.state is BookState.SYNCED:
            return  # a snapshot resent to a valid book (Bybit depth 1): not a state change
        if self.state is BookState.RESYNCING:
            self.resyncs += 1
        self._set_state(BookState.SYNCED)
        log.info("book_synced", instrument=str(self.instrument.id), sequence=self.last_seq,
                 buffered=buffered, resyncs=self.resyncs)

    def _set_state(self, state: BookState) -> None:
        # Every state change after construction: the book's flag and the gauge follow it.
        self.state = state
        synced = state is BookState.SYNCED
        self.book.valid = synced
        self._valid_metric.set(1 if synced else 0)

    def _load(self, levels: np.ndarray, checksum: int | None, ts_event: int,
              ts_init: int) -> bool:
        # Apply snapshot or buffered levels while (re)building; False when the book is invalid.
        status = self.book.apply(levels, levels.shape[0])
        if status != kbook.OK:
            self._invalidate(f"book_status_{status}", ts_event, ts_init)
            return False
        if self.max_depth:
            self.book.truncate(self.max_depth)
        return checksum is None or self._checksum_matches(checksum, ts_event, ts_init)

    def invalidate(self, reason: str, ts_event: int, ts_init: int) -> None:
        """Mark the book invalid (stale stream, disconnect) and ask for a rebuild."""
        if self.state is BookState.SYNCED:
            self._resync(reason, ts_event, ts_init)

    def check_stale(self, now_ns: int, max_age_ns: int) -> bool:
        """Invalidate a synced book that has heard nothing for `max_age_ns`; True if it did."""
        if self.state is BookState.SYNCED and now_ns - self.last_message_ns > max_age_ns:
            self._resync("stale", now_ns, now_ns)
            return True
        return False

    def reset(self, reason: str, ts_event: int, ts_init: int) -> None:
        """Forget everything (a new connection): buffer from scratch and wait for a snapshot."""
        was_valid = self.state is BookState.SYNCED
        self._clear_buffer()
        self.book.clear()
        self._set_state(BookState.RESYNCING if self.snapshots else BookState.BUFFERING)
        if was_valid:
            BOOK_RESYNCS.labels(self.instrument.id.venue, self.instrument.id.symbol, reason).inc()
            self._bus.publish(BookInvalidated(instrument=self.instrument.id, reason=reason,
                                              ts_event=ts_event, ts_init=ts_init))

    def _apply(self, levels: np.ndarray, n: int, last: int, ts_event: int, ts_init: int,
               checksum: int | None = None) -> None:
        status = self.book.apply(levels, n)
        if status == kbook.OK:
            self.last_seq = last
            if self.max_depth:
                self.book.truncate(self.max_depth)
            if checksum is not None and not self._checksum_matches(checksum, ts_event, ts_init):
                return
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
        # One read of the top as Python ints: int / float rounds exactly as float(int64) / float.
        top = book.top.tolist()
        px, sz = book.price_scale, book.size_scale
        self._bus.publish(BookUpdated(
            instrument=self.instrument.id, best_bid=top[TOP_BID] / px,
            best_bid_size=top[TOP_BID_SIZE] / sz, best_ask=top[TOP_ASK] / px,
            best_ask_size=top[TOP_ASK_SIZE] / sz, ts_event=ts_event, ts_init=ts_init,
        ))

    def _checksum_matches(self, expected: int, ts_event: int, ts_init: int) -> bool:
        if self.checker is None:
            return True
        if self.checker.checksum(self.book) == expected:
            self.checksums_ok += 1
            return True
        self.checksums_failed += 1
        self._checksum_metric.inc()
        self._resync("checksum", ts_event, ts_init)
        return False

    def _buffer_delta(self, levels: np.ndarray, first: int, last: int, prev: int,
                      ts_event: int, ts_init: int, checksum: int | None = None) -> None:
        if len(self._buffer) >= self._max_buffer:
            self._overflow_metric.inc()
            log.warning("book_buffer_overflowed", instrument=str(self.instrument.id),
                        size=self._max_buffer)
            self._clear_buffer()
            self._request_snapshot(self.instrument.id, "buffer_overflow")
        self._buffer.append(BookDelta(
            instrument=self.instrument.id, levels=levels, first_seq=first, last_seq=last,
            prev_seq=prev, ts_event=ts_event, ts_init=ts_init,
        ))
        self._buffer_checksums.append(checksum)

    def _clear_buffer(self) -> None:
        self._buffer.clear()
        self._buffer_checksums.clear()

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
        self._set_state(BookState.RESYNCING)
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
