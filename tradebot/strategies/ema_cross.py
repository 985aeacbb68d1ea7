"""EMA crossover on the mid price: long when the fast EMA is above the slow one, else flat.

Features come from `core.signals.ema_cross_update` (one compiled call per book update).
Spot and linear perpetuals; with `allow_short` it goes short on a down-cross. It trades when
the signal or the position changes (a partial fill, a denial, a liquidation), not when a price
drift alone changes how many lots `order_notional` buys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from tradebot.config import build_section, opt
from tradebot.core.signals import ema_cross_state, ema_cross_update
from tradebot.domain import InstrumentId, Side
from tradebot.errors import ConfigError
from tradebot.events import BookUpdated, OrderDenied, OrderUpdated
from tradebot.strategies.base import Strategy


@dataclass(frozen=True, slots=True)
class EmaCrossParams:
    fast_tau_s: float = opt(10.0, min=0.0, exclusive_min=True)
    slow_tau_s: float = opt(60.0, min=0.0, exclusive_min=True)
    band_bps: float = opt(1.0, min=0.0)
    order_notional: Decimal = opt(Decimal(200), min=Decimal(0), exclusive_min=True)
    cooldown_s: float = opt(10.0, min=0.0)
    allow_short: bool = False

    @classmethod
    def parse(cls, params: Mapping[str, Any], where: str) -> EmaCrossParams:
        """Validate strategy params; ConfigError names the bad key."""
        result = build_section(cls, params, where)
        if result.fast_tau_s >= result.slow_tau_s:
            raise ConfigError("need fast_tau_s < slow_tau_s", key=f"{where}.fast_tau_s")
        return result


class EmaCross(Strategy):
    """Trade toward +1 / 0 (or -1) units of `order_notional` on EMA crossovers."""

    def __init__(self, name: str, params: Mapping[str, Any]) -> None:
        super().__init__(name, params)
        self.p = EmaCrossParams.parse(params, f"strategies.{name}.params")
        self._band = self.p.band_bps / 10_000.0
        self._state: dict[InstrumentId, np.ndarray] = {}
        self._pending: set[InstrumentId] = set()
        self._cooldown_until: dict[InstrumentId, int] = {}
        # (signal, position) at which the position was found on target: nothing to do until
        # either changes (a price drift alone does not resize the position).
        self._settled: dict[InstrumentId, tuple[float, Decimal]] = {}
        self.signals = 0

    def on_book(self, event: BookUpdated) -> None:
        """Update the EMAs with the mid and trade when the signal disagrees with the position."""
        iid = event.instrument
        state = self._state.get(iid)
        if state is None:
            state = self._state[iid] = ema_cross_state()
        mid = 0.5 * (event.best_bid + event.best_ask)
        signal = ema_cross_update(state, event.ts_init / 1e9, mid, self.p.fast_tau_s,
                                  self.p.slow_tau_s, self._band)
        if signal == 0.0 or iid in self._pending:
            return
        position = self.ctx.portfolio.position(iid)
        if self._settled.get(iid) == (signal, position):
            return
        now = self.ctx.clock.now_ns()
        if now < self._cooldown_until.get(iid, 0):
            return
        self._trade_toward(iid, int(signal), event, position)

    def _trade_toward(self, iid: InstrumentId, signal: int, event: BookUpdated,
                      position: Decimal) -> None:
        inst = self.ctx.instruments[iid]
        price = event.best_ask if signal > 0 else event.best_bid
        if not (price > 0 and math.isfinite(price)):
            return
        unit = inst.round_size_down(self.p.order_notional / (Decimal(repr(price)) *
                                                              inst.contract_size))
        low = -unit if self.p.allow_short else Decimal(0)
        target = unit if signal > 0 else low
        delta = target - position
        if delta == 0 or abs(delta) < inst.lot_size:
            self._settled[iid] = (float(signal), position)
            return
        side = Side.BUY if delta > 0 else Side.SELL
        reduce_only = abs(target) < abs(position) and target * position >= 0
        self.signals += 1
        self.ctx.submit(iid, side, abs(delta), reduce_only=reduce_only)
        self._pending.add(iid)
        self._cooldown_until[iid] = self.ctx.clock.now_ns() + int(self.p.cooldown_s * 1e9)

    def on_order(self, event: OrderUpdated) -> None:
        """Allow the next intent once the order is done."""
        if event.state.status.is_terminal:
            self._pending.discard(event.state.order.spec.instrument)

    def on_denied(self, event: OrderDenied) -> None:
        """Allow the next intent after a denial (the cooldown still applies)."""
        self._pending.discard(event.intent.spec.instrument)
