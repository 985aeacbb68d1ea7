"""Per-instrument features, updated by the compiled kernels as market events arrive.

The engine owns every instrument's state arrays: a time-bar builder (`core.bars`), the bar
feature state and the microstructure state (`core.fused`). One kernel call updates all the
features an event touches: a valid book update feeds the top levels of the instrument's book to
`update_book`; a trade feeds the bar builder and `update_trade`; a completed bar feeds
`update_bar` and is published as a `Bar` event. A clock timer closes time bars in a quiet
market too. Strategies read a `FeatureView`: name -> float, NaN until the feature is warm.

Inputs that are NaN, infinite or negative (or that a kernel refuses: a crossed book) never
reach the state; they are counted in `tradebot_feature_rejected_inputs_total{reason}`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
import structlog
from prometheus_client import Counter

from tradebot.book import BookView
from tradebot.bus import Bus
from tradebot.clock import Clock, TimerHandle
from tradebot.config import FeaturesConfig
from tradebot.core import bars, fused
from tradebot.core.fused_layout import (
    BarFeatureParams,
    FeatureLayout,
    MicroFeatureParams,
    bar_layout,
    micro_layout,
)
from tradebot.domain import InstrumentId
from tradebot.events import Bar, BookUpdated, Trade
from tradebot.log import Throttle

log = structlog.get_logger(__name__)

FEATURE_REJECTED = Counter(
    "tradebot_feature_rejected_inputs_total",
    "Inputs refused before they entered feature state (NaN, infinite, negative, crossed, late)",
    ["reason"],
)

REASONS = {
    fused.NOT_FINITE: "not_finite",
    fused.NEGATIVE: "negative",
    fused.INCONSISTENT: "inconsistent",
    fused.BAD_SHAPE: "bad_shape",
}


class _Instrument:
    """The state arrays of one instrument and how many inputs of each kind it accepted."""

    __slots__ = ("bar_fs", "bar_ist", "bar_out", "bar_state", "book", "micro_out",
                 "micro_state", "seen")

    def __init__(self, bar: FeatureLayout, micro: FeatureLayout, interval_ns: int,
                 depth: int) -> None:
        self.bar_fs, self.bar_ist = bars.time_bar_state(interval_ns)
        self.bar_state = bar.new_state()
        self.bar_out = bar.new_out()
        self.micro_state = micro.new_state()
        self.micro_out = micro.new_out()
        self.book = np.zeros((4, depth))
        self.seen = {"bar": 0, "book": 0, "trade": 0}


class FeatureView(Mapping[str, float]):
    """A read-only view of one instrument's features: name -> value, NaN until warm."""

    def __init__(self, engine: FeatureEngine, state: _Instrument) -> None:
        self._engine = engine
        self._state = state

    def __getitem__(self, name: str) -> float:
        slot = self._engine.slots[name]
        out, i, kind, warmup = slot
        seen = self._state.seen[kind]
        if seen < warmup:
            return math.nan
        return float(getattr(self._state, out)[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self._engine.slots)

    def __len__(self) -> int:
        return len(self._engine.slots)


class FeatureEngine:
    """Own every instrument's feature state; update it from the bus; publish completed bars."""

    def __init__(self, bus: Bus, clock: Clock, books: Mapping[InstrumentId, BookView],
                 config: FeaturesConfig, bar_params: BarFeatureParams | None = None,
                 micro_params: MicroFeatureParams | None = None) -> None:
        self._bus = bus
        self._clock = clock
        self._books = books
        self.interval_ns = round(config.bar_interval_s * 1e9)
        self._grace_ns = round(config.bar_close_grace_s * 1e9)
        self.bar_layout = bar_layout(bar_params)
        self.micro_layout = micro_layout(micro_params)
        self._depth = int(self.micro_layout.template[0])
        self._instruments: dict[InstrumentId, _Instrument] = {}
        self._timer: TimerHandle | None = None
        self._throttle = Throttle(60.0)
        # name -> (state attribute holding the output, slot, input kind, warm-up length)
        self.slots: dict[str, tuple[str, int, str, int]] = {}
        for attr, layout in (("bar_out", self.bar_layout), ("micro_out", self.micro_layout)):
            for i, name in enumerate(layout.names):
                if name in self.slots:
                    raise ValueError(f"feature {name} is declared twice")
                self.slots[name] = (attr, i, layout.inputs[i], layout.warmup[i])

    @property
    def names(self) -> tuple[str, ...]:
        """Return every feature name, bar features first."""
        return tuple(self.slots)

    def warmup_lengths(self) -> dict[str, tuple[str, int]]:
        """Return each feature's input kind ("bar", "book", "trade") and warm-up length."""
        return {name: (kind, n) for name, (_, _, kind, n) in self.slots.items()}

    def start(self) -> None:
        """Follow book updates and trades; arm the timer that closes bars in a quiet market."""
        self._bus.subscribe(BookUpdated, self.on_book)
        self._bus.subscribe(Trade, self.on_trade)
        if self._timer is None:
            self._arm()

    def stop(self) -> None:
        """Disarm the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def features(self, instrument: InstrumentId) -> FeatureView:
        """Return the read-only feature view of `instrument`."""
        return FeatureView(self, self._state(instrument))

    def snapshot(self) -> dict[str, dict[str, float | None]]:
        """Return every instrument's features as JSON-ready values (None for NaN)."""
        return {
            str(iid): {k: (None if math.isnan(v) else v) for k, v in self.features(iid).items()}
            for iid in self._instruments
        }

    def _state(self, instrument: InstrumentId) -> _Instrument:
        state = self._instruments.get(instrument)
        if state is None:
            state = _Instrument(self.bar_layout, self.micro_layout, self.interval_ns,
                                self._depth)
            self._instruments[instrument] = state
        return state

    def _reject(self, reason: str, instrument: InstrumentId) -> None:
        FEATURE_REJECTED.labels(reason).inc()
        suppressed = self._throttle.ready((reason, instrument))
        if suppressed is not None:
            log.warning("feature_input_rejected", reason=reason, instrument=str(instrument),
                        suppressed=suppressed)

    def on_book(self, event: BookUpdated) -> None:
        """Feed the top levels of the instrument's book to its microstructure features."""
        book = self._books.get(event.instrument)
        if book is None:
            return
        state = self._state(event.instrument)
        code = fused.update_book_levels(
            state.micro_state, book.keys, book.sizes, book.counts, book.price_scale,
            book.size_scale, state.book, state.micro_out)
        if code == fused.OK:
            state.seen["book"] += 1
        else:
            self._reject(REASONS[code], event.instrument)

    def on_trade(self, event: Trade) -> None:
        """Feed one trade to the bar builder and the trade features; publish a completed bar."""
        price, size = event.price, event.size
        if not (math.isfinite(price) and math.isfinite(size)):
            self._reject("not_finite", event.instrument)
            return
        if price <= 0.0 or size < 0.0:
            self._reject("negative", event.instrument)
            return
        state = self._state(event.instrument)
        side = float(event.aggressor)
        emitted = bars.bar_update(state.bar_fs, state.bar_ist, event.ts_event, price, size, side)
        if emitted == bars.REJECTED:
            # Valid, but older than a bar already closed: the trade features still take it.
            self._reject("late_for_bar", event.instrument)
        if fused.update_trade(state.micro_state, state.micro_out, price, size, side) == fused.OK:
            state.seen["trade"] += 1
        if emitted == bars.EMITTED:
            self._close_bar(event.instrument, state, event.ts_init)

    def _close_bar(self, instrument: InstrumentId, state: _Instrument, ts_init: int) -> None:
        t_open, t_close, values = bars.emitted_bar(state.bar_fs, state.bar_ist)
        code = fused.update_bar(state.bar_state, values, state.bar_out)
        if code != fused.OK:
            self._reject(REASONS[code], instrument)
        else:
            state.seen["bar"] += 1
        o, h, lo, c, v, vwap, n, buy, sell = (float(x) for x in values)
        self._bus.publish(Bar(
            instrument=instrument, interval_ns=self.interval_ns, open=o, high=h, low=lo,
            close=c, volume=v, vwap=vwap, trades=int(n), buy_volume=buy, sell_volume=sell,
            ts_open=t_open, ts_event=t_close, ts_init=ts_init,
        ))

    def flush(self, now_ns: int) -> int:
        """Close every time bar whose interval ended before `now_ns`; return how many."""
        closed = 0
        for iid, state in self._instruments.items():
            if bars.bar_flush(state.bar_fs, state.bar_ist, now_ns, False) == bars.EMITTED:
                self._close_bar(iid, state, self._clock.now_ns())
                closed += 1
        return closed

    def _arm(self) -> None:
        now = self._clock.now_ns()
        due = (now - self._grace_ns) // self.interval_ns * self.interval_ns + self.interval_ns
        self._timer = self._clock.call_at(due + self._grace_ns, self._on_timer)

    def _on_timer(self) -> None:
        self.flush(self._clock.now_ns() - self._grace_ns)
        self._arm()
