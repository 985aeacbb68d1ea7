"""Flag fills followed by an adverse move: the mid moved against the fill by more than
`paper.toxic_move_bps` within `paper.toxic_window_s` of it (a sign of adverse selection)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

from tradebot.bus import Bus
from tradebot.domain import InstrumentId
from tradebot.events import BookUpdated, Fill, FillFlagged

log = structlog.get_logger(__name__)

TOXIC_FILLS = Counter("tradebot_paper_toxic_fills_total", "Fills flagged likely toxic",
                      ["venue", "flag"])


@dataclass(slots=True)
class _Watch:
    fill_id: str
    side: int
    price: float
    until_ns: int


class FillToxicity:
    """Watch each fill for `window_s` and publish FillFlagged on an adverse move."""

    def __init__(self, bus: Bus, window_s: float, move_bps: float) -> None:
        self._bus = bus
        self._window_ns = int(window_s * 1e9)
        self._move = move_bps / 10_000.0
        self._watches: dict[InstrumentId, deque[_Watch]] = {}
        self.flagged = 0

    def start(self) -> None:
        """Watch fills and the books after them (unless the window is 0: switched off)."""
        if self._window_ns > 0:
            self._bus.subscribe(Fill, self.on_fill)
            self._bus.subscribe(BookUpdated, self.on_book)

    def stop(self) -> None:
        """Nothing to release."""

    def on_fill(self, fill: Fill) -> None:
        """Start watching a fill; count the flags it already carries."""
        for flag in fill.flags:
            TOXIC_FILLS.labels(fill.instrument.venue, flag).inc()
        self._watches.setdefault(fill.instrument, deque()).append(
            _Watch(fill.fill_id, int(fill.side), float(fill.price),
                   fill.ts_event + self._window_ns))

    def on_book(self, event: BookUpdated) -> None:
        """Drop expired watches; flag the fills the new mid moved against."""
        watches = self._watches.get(event.instrument)
        if not watches:
            return
        now = event.ts_init
        while watches and watches[0].until_ns < now:
            watches.popleft()
        if not watches or event.best_bid <= 0 or event.best_ask <= 0:
            return
        mid = 0.5 * (event.best_bid + event.best_ask)
        hit = [w for w in watches if (w.price - mid) * w.side > self._move * w.price]
        for w in hit:
            watches.remove(w)
            self._flag(event.instrument, w, mid, now)

    def _flag(self, iid: InstrumentId, w: _Watch, mid: float, now: int) -> None:
        self.flagged += 1
        TOXIC_FILLS.labels(iid.venue, "adverse_move").inc()
        move = (w.price - mid) * w.side / w.price * 10_000.0
        self._bus.publish(FillFlagged(fill_id=w.fill_id, flag="adverse_move",
                                      detail=f"mid {mid:.10g} is {move:.2f} bps against the fill",
                                      ts_event=now, ts_init=now))
