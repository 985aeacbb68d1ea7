"""The liquidation check of the simulated perpetual account.

Cross margin over all perpetual positions: when equity falls below the maintenance margin
(|position| x mark x contract size x `paper.maintenance_margin`), every open perpetual order is
cancelled and every perpetual position is closed at market by the venue itself (an internal,
reduce-only order of strategy `liquidation`: no latency, no balance checks). Checked on book
updates of instruments with a position, at most every `CHECK_INTERVAL_NS` of clock time.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import structlog
from prometheus_client import Counter

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import Instrument, InstrumentId, MarketKind, OrderType, Side
from tradebot.events import BookUpdated, OrderIntent, SubmitOrder
from tradebot.execution.paper import PaperVenue
from tradebot.order import IdGenerator, OrderSpec

log = structlog.get_logger(__name__)

LIQUIDATIONS = Counter("tradebot_paper_liquidations_total", "Account liquidations")

LIQUIDATION = "liquidation"  # the strategy name its orders and fills carry

# Margin moves slowly against 10x leverage; checking every book event costs more than it buys.
CHECK_INTERVAL_NS = 100_000_000


class Liquidator:
    """Close the perpetual positions when equity falls below the maintenance margin."""

    def __init__(self, bus: Bus, clock: Clock, venue: PaperVenue,
                 instruments: Mapping[InstrumentId, Instrument]) -> None:
        self._bus = bus
        self._clock = clock
        self._venue = venue
        self._perps = {iid: i for iid, i in instruments.items() if i.kind is not MarketKind.SPOT}
        self._next_check = 0
        # One counter for the intent and the order ids: LIQUIDATION-t-1, then LIQ-t-2.
        self._ids = IdGenerator("LIQ")
        self.liquidations = 0

    def start(self) -> None:
        """Check the margin on book updates from now on."""
        self._bus.subscribe(BookUpdated, self.on_book)

    def stop(self) -> None:
        """Nothing to release."""

    def continue_ids(self, stored_orders: int) -> None:
        """Number liquidation orders after the `stored_orders` the store holds (as risk does)."""
        self._ids.continue_after(stored_orders)

    def on_book(self, event: BookUpdated) -> None:
        """Check the margin now and then while a perpetual position is open."""
        if event.instrument not in self._perps or event.ts_init < self._next_check:
            return
        self._next_check = event.ts_init + CHECK_INTERVAL_NS
        self.check()

    def check(self) -> bool:
        """Liquidate when equity is below the maintenance margin; return True if it did."""
        account = self._venue.account
        maintenance = account.maintenance_margin()
        if maintenance <= 0:
            return False
        equity = account.view.equity()
        if equity >= maintenance:
            return False
        self.liquidate(equity, maintenance)
        return True

    def liquidate(self, equity: Decimal, maintenance: Decimal) -> None:
        """Cancel open perpetual orders, then close every perpetual position at market."""
        now = self._clock.now_ns()
        self.liquidations += 1
        LIQUIDATIONS.inc()
        log.warning("account_liquidated", equity=str(equity), maintenance=str(maintenance))
        venue = self._venue
        for o in list(venue.orders.values()):
            if o.arrived and o.inst.id in self._perps and not o.order.spec.internal:
                venue.close(o, "liquidation", now, 0)
        for iid in sorted(self._perps):
            qty = venue.account.position(iid)
            if not qty:
                continue
            spec = OrderSpec(strategy=LIQUIDATION, instrument=iid,
                             side=Side.SELL if qty > 0 else Side.BUY, quantity=abs(qty),
                             order_type=OrderType.MARKET, reduce_only=True, internal=True)
            intent = OrderIntent(intent_id=self._ids.next(now, prefix=LIQUIDATION), spec=spec,
                                 ts_event=now, ts_init=now)
            # Straight to execution, past risk: the venue closes the account's positions itself.
            self._bus.publish(SubmitOrder(order_id=self._ids.next(now), intent=intent,
                                          ts_event=now, ts_init=now))
