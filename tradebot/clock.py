"""The only module that reads the system clock (STYLE.md rule 3)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Cancel the callback if it has not run."""


class Clock(Protocol):
    """Source of wall time (ns since the epoch) and of timers on that time."""

    def now_ns(self) -> int:
        """Return the current time in ns since the Unix epoch."""

    def call_at(self, ts_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Run `callback` when the clock reaches `ts_ns`."""


# A monotonic high-resolution counter for measuring durations (ns). The function itself, not
# a wrapper: feeds time every frame with it, and a Python frame more costs ~1% of a replay.
perf_ns = time.perf_counter_ns


def monotonic() -> float:
    """Return monotonic seconds (deadlines, backoff), never wall time."""
    return time.monotonic()


class LiveClock:
    """Wall clock; timers run on the asyncio loop."""

    def now_ns(self) -> int:
        """Return the system wall time in ns."""
        return time.time_ns()

    def call_at(self, ts_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Schedule `callback` on the running loop at wall time `ts_ns`."""
        delay = max(0.0, (ts_ns - time.time_ns()) / 1e9)
        return asyncio.get_running_loop().call_later(delay, callback)


class _SimTimer:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimClock:
    """Simulated time for replay and tests: time moves only when told, timers fire in order."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._timers: list[tuple[int, int, _SimTimer]] = []
        self._seq = itertools.count()

    def now_ns(self) -> int:
        """Return the simulated time."""
        return self._now

    def call_at(self, ts_ns: int, callback: Callable[[], None]) -> TimerHandle:
        """Schedule `callback` for simulated time `ts_ns` (run by `advance_to`)."""
        timer = _SimTimer(callback)
        heapq.heappush(self._timers, (ts_ns, next(self._seq), timer))
        return timer

    def advance_to(self, ts_ns: int) -> None:
        """Move time forward to `ts_ns`, running due timers at their own times, in order."""
        timers = self._timers
        while timers and timers[0][0] <= ts_ns:
            due, _, timer = heapq.heappop(timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, due)
            timer.callback()
        if ts_ns > self._now:
            self._now = ts_ns
