"""Delayed delivery of venue reports: each order's reports arrive in the order they were sent.

A report is due at `now + response latency`, but never before an earlier report of the same
order (an acknowledgement still in flight holds back the fill behind it). One clock timer is
armed for the earliest due report; SimClock and LiveClock both run it at that time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from tradebot.clock import Clock, TimerHandle


class Outbox:
    """A time-ordered queue of report callbacks, FIFO per order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[int, int, str, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._last_due: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._timer: TimerHandle | None = None
        self._armed_at = 0

    def post(self, order_id: str, due_ns: int, deliver: Callable[[], None]) -> int:
        """Deliver `deliver()` at `due_ns` or after the order's previous report; return when."""
        waiting = self._waiting.get(order_id, 0)
        due = max(due_ns, self._last_due[order_id]) if waiting else due_ns
        if due <= self._clock.now_ns() and not waiting:
            deliver()
            return due
        self._last_due[order_id] = due
        self._waiting[order_id] = waiting + 1
        heapq.heappush(self._heap, (due, next(self._seq), order_id, deliver))
        if self._timer is None or due < self._armed_at:
            if self._timer is not None:
                self._timer.cancel()
            self._armed_at = due
            self._timer = self._clock.call_at(due, self._fire)
        return due

    def _fire(self) -> None:
        self._timer = None
        now = self._clock.now_ns()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, order_id, deliver = heapq.heappop(heap)
            left = self._waiting[order_id] - 1
            if left:
                self._waiting[order_id] = left
            else:
                del self._waiting[order_id], self._last_due[order_id]
            deliver()
        if heap and self._timer is None:
            self._armed_at = heap[0][0]
            self._timer = self._clock.call_at(self._armed_at, self._fire)

    def __len__(self) -> int:
        return len(self._heap)
