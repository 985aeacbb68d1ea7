"""Perpetual funding: at each funding time, positions pay or receive position x mark x rate.

Funding times are the multiples of `paper.funding_interval_h` hours since 00:00 UTC (Binance
USD-M: 00:00, 08:00, 16:00). The rate is the latest one from the funding feed
(`FundingRate` events) when there is one, else `paper.funding_rate`; the mark is the
portfolio's mark (the venue mark price when known, else the book mid). A positive rate makes
longs pay and shorts receive.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import structlog
from prometheus_client import Counter

from tradebot.bus import Bus
from tradebot.clock import Clock, TimerHandle
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.events import FundingPayment, FundingRate
from tradebot.portfolio.portfolio import Portfolio

log = structlog.get_logger(__name__)

FUNDING_PAYMENTS = Counter("tradebot_funding_payments_total", "Funding settlements applied",
                           ["venue", "symbol"])
FUNDING_SKIPPED = Counter("tradebot_funding_skipped_total",
                          "Funding times skipped because a position had no mark",
                          ["venue", "symbol"])

_HOUR_NS = 3_600_000_000_000


def next_funding_ns(now_ns: int, interval_h: int) -> int:
    """Return the first funding time strictly after `now_ns`."""
    step = interval_h * _HOUR_NS
    return (now_ns // step + 1) * step


class FundingScheduler:
    """Publish a FundingPayment for every open perpetual position at each funding time."""

    def __init__(self, bus: Bus, clock: Clock, portfolio: Portfolio,
                 instruments: Mapping[InstrumentId, Instrument], default_rate: Decimal,
                 interval_h: int) -> None:
        self._bus = bus
        self._clock = clock
        self._portfolio = portfolio
        self._perps = {iid: i for iid, i in instruments.items() if i.kind is not MarketKind.SPOT}
        self._default_rate = default_rate
        self._interval_h = interval_h
        self._rates: dict[InstrumentId, Decimal] = {}
        self._timer: TimerHandle | None = None
        self.next_ns = 0

    def start(self) -> None:
        """Follow the funding feed and arm the timer for the next funding time."""
        self._bus.subscribe(FundingRate, self._on_rate)
        self._arm()

    def stop(self) -> None:
        """Disarm the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_rate(self, event: FundingRate) -> None:
        self._rates[event.instrument] = Decimal(repr(event.rate))

    def _arm(self) -> None:
        self.next_ns = next_funding_ns(self._clock.now_ns(), self._interval_h)
        self._timer = self._clock.call_at(self.next_ns, self._settle)

    def _settle(self) -> None:
        now = self._clock.now_ns()
        for iid in sorted(self._perps):
            self.settle(iid, now)
        self._arm()

    def settle(self, iid: InstrumentId, now: int) -> FundingPayment | None:
        """Charge one instrument's funding now; return the payment (None: nothing to pay)."""
        inst = self._perps[iid]
        qty = self._portfolio.position(iid)
        if not qty:
            return None
        mark = self._portfolio.mark(iid)
        if mark is None:
            FUNDING_SKIPPED.labels(iid.venue, iid.symbol).inc()
            log.warning("funding_skipped", instrument=str(iid), reason="no_mark")
            return None
        rate = self._rates.get(iid, self._default_rate)
        amount = qty * inst.contract_size * mark * rate
        payment = FundingPayment(instrument=iid, position=qty, mark_price=mark, rate=rate,
                                 amount=amount, currency=inst.quote, ts_event=now, ts_init=now)
        FUNDING_PAYMENTS.labels(iid.venue, iid.symbol).inc()
        log.info("funding_settled", instrument=str(iid), position=str(qty), mark=str(mark),
                 rate=str(rate), amount=str(amount))
        self._bus.publish(payment)
        return payment
