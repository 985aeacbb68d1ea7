"""The portfolio: every balance is a fold over fills, so a restart replays the same fills.

Accounting (account currency, exact Decimals):
- spot: a buy of q at p pays q*p + fee from cash and holds q; equity = cash + q * mark;
- linear perpetual: cash moves only by realized PnL and fees; equity = cash + q * (mark - avg);
- both: realized PnL on the closed part is closed * (p - avg) * sign(position) * contract size,
  so equity == starting cash + realized + unrealized - fees at all times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from tradebot.bus import Bus
from tradebot.clock import Clock, TimerHandle
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import InvariantError
from tradebot.events import BookUpdated, EquitySnapshot, Fill

log = structlog.get_logger(__name__)

EQUITY = Gauge("tradebot_portfolio_equity", "Equity in the account currency", ["currency"])
CASH = Gauge("tradebot_portfolio_cash", "Cash in the account currency", ["currency"])
FILLS = Counter("tradebot_fills_total", "Fills applied to the portfolio", ["venue", "symbol"])
NEGATIVE_CASH = Counter("tradebot_portfolio_negative_cash_total", "Fills that left cash below 0")

ZERO = Decimal(0)


@dataclass(slots=True)
class Position:
    """A signed position with its average entry price and realized PnL."""

    quantity: Decimal = ZERO
    average_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO


class Portfolio:
    """Fold fills into cash and positions; mark positions with the latest book mids."""

    def __init__(self, bus: Bus, clock: Clock, instruments: Mapping[InstrumentId, Instrument],
                 currency: str, starting_cash: Decimal, equity_interval_s: float) -> None:
        self._bus = bus
        self._clock = clock
        self._instruments = instruments
        self.currency = currency
        self.starting_cash = starting_cash
        self._cash = starting_cash
        self.fees = ZERO
        self.realized = ZERO
        self.fill_count = 0
        self.positions: dict[InstrumentId, Position] = {}
        self._marks: dict[InstrumentId, float] = {}
        self._interval_ns = int(equity_interval_s * 1e9)
        self._timer: TimerHandle | None = None
        self._equity_metric = EQUITY.labels(currency)
        self._cash_metric = CASH.labels(currency)

    def start(self) -> None:
        """Subscribe to fills and marks and start the equity timer."""
        self._bus.subscribe(Fill, self.on_fill)
        self._bus.subscribe(BookUpdated, self._on_book)
        self._schedule()

    def stop(self) -> None:
        """Stop the equity timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._timer = self._clock.call_at(self._clock.now_ns() + self._interval_ns, self._tick)

    def _tick(self) -> None:
        self.publish_equity()
        self._schedule()

    def _on_book(self, event: BookUpdated) -> None:
        self._marks[event.instrument] = 0.5 * (event.best_bid + event.best_ask)

    # --- the view -------------------------------------------------------------------------

    def position(self, instrument: InstrumentId) -> Decimal:
        """Return the signed position size."""
        pos = self.positions.get(instrument)
        return pos.quantity if pos is not None else ZERO

    def cash(self) -> Decimal:
        """Return the account-currency cash."""
        return self._cash

    def mark(self, instrument: InstrumentId) -> Decimal | None:
        """Return the latest mid price as a Decimal, None before the first book."""
        raw = self._marks.get(instrument)
        return Decimal(repr(raw)) if raw is not None else None

    def unrealized(self) -> Decimal:
        """Return the unrealized PnL of all positions at the latest marks."""
        total = ZERO
        for iid, pos in self.positions.items():
            mark = self.mark(iid)
            if pos.quantity and mark is not None:
                total += pos.quantity * (mark - pos.average_price) * \
                    self._instruments[iid].contract_size
        return total

    def equity(self) -> Decimal:
        """Return the equity: cash plus positions at their latest marks."""
        total = self._cash
        for iid, pos in self.positions.items():
            if not pos.quantity:
                continue
            inst = self._instruments[iid]
            mark = self.mark(iid) or pos.average_price
            if inst.kind is MarketKind.SPOT:
                total += pos.quantity * mark * inst.contract_size
            else:
                total += pos.quantity * (mark - pos.average_price) * inst.contract_size
        return total

    # --- the fold --------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        """Apply one fill (live, replay and restart all come through here)."""
        inst = self._instruments.get(fill.instrument)
        if inst is None:
            raise InvariantError(f"fill {fill.fill_id} for unconfigured {fill.instrument}")
        if fill.quantity <= 0 or fill.price <= 0 or fill.fee_currency != self.currency:
            raise InvariantError(f"fill {fill.fill_id} is impossible: {fill}")
        pos = self.positions.setdefault(fill.instrument, Position())
        signed = fill.quantity * fill.side
        realized = _fold(pos, signed, fill.price, inst.contract_size)
        self.realized += realized
        self.fees += fill.fee
        if inst.kind is MarketKind.SPOT:
            self._cash -= signed * fill.price * inst.contract_size + fill.fee
        else:
            self._cash += realized - fill.fee
        self.fill_count += 1
        FILLS.labels(fill.instrument.venue, fill.instrument.symbol).inc()
        if self._cash < 0:
            NEGATIVE_CASH.inc()
            log.error("portfolio_cash_negative", cash=str(self._cash), fill_id=fill.fill_id)
        self._cash_metric.set(float(self._cash))

    def publish_equity(self) -> EquitySnapshot:
        """Publish the current equity point."""
        now = self._clock.now_ns()
        equity = self.equity()
        self._equity_metric.set(float(equity))
        self._cash_metric.set(float(self._cash))
        snap = EquitySnapshot(currency=self.currency, equity=equity, cash=self._cash,
                              realized_pnl=self.realized, unrealized_pnl=self.unrealized(),
                              fees=self.fees, ts_event=now, ts_init=now)
        self._bus.publish(snap)
        return snap

    def snapshot(self) -> dict[str, Any]:
        """Return the portfolio as JSON-ready data (for the API)."""
        return {
            "currency": self.currency,
            "starting_cash": str(self.starting_cash),
            "cash": str(self._cash),
            "equity": str(self.equity()),
            "realized_pnl": str(self.realized),
            "unrealized_pnl": str(self.unrealized()),
            "fees": str(self.fees),
            "fills": self.fill_count,
            "positions": [
                {"instrument": str(iid), "quantity": str(p.quantity),
                 "average_price": str(p.average_price), "realized_pnl": str(p.realized_pnl),
                 "mark": str(self.mark(iid)) if self.mark(iid) is not None else None}
                for iid, p in sorted(self.positions.items()) if p.quantity or p.realized_pnl
            ],
        }


def _fold(pos: Position, signed: Decimal, price: Decimal, contract_size: Decimal) -> Decimal:
    """Add a signed fill to a position; return the realized PnL of the part it closed."""
    qty = pos.quantity
    if qty == 0 or (qty > 0) == (signed > 0):
        total = abs(qty) + abs(signed)
        pos.average_price = (abs(qty) * pos.average_price + abs(signed) * price) / total
        pos.quantity = qty + signed
        return ZERO
    closed = min(abs(signed), abs(qty))
    direction = 1 if qty > 0 else -1
    realized = closed * (price - pos.average_price) * direction * contract_size
    pos.realized_pnl += realized
    pos.quantity = qty + signed
    if pos.quantity == 0:
        pos.average_price = ZERO
    elif (pos.quantity > 0) != (qty > 0):
        pos.average_price = price  # flipped: the remainder opened at this price
    return realized
