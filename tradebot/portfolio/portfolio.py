"""The portfolio: every balance is a fold over fills and funding, so a restart replays them.

Accounting (account currency, exact Decimals). A position keeps its signed quantity `q` and the
signed cost of its open part `cost` (sum of quantity x price of the lots still open), so the
average price is cost / q and nothing is rounded on the way:
- spot: a buy of q at p pays q*p*contract + fee from cash and holds q;
- linear perpetual: cash (the wallet) moves only by realized PnL, fees and funding;
- closing c of |q| at p realizes (c*p*sign(q) - cost_removed) * contract, cost_removed being
  cost * c / |q| (all of it when the position closes);
- unrealized = (q*mark - cost) * contract; equity = cash + spot q*mark*contract + perp unrealized.
After every fill and funding payment the portfolio checks that equity equals starting cash +
realized + unrealized - fees - funding, exactly, and that no balance is negative
(`InvariantError` otherwise). Perpetual marks are the venue's mark price when a MarkPrice event
has been seen, else the book mid; after a restart, until an instrument's first book, the last
mark stored before the stop (`restore_marks`), so equity does not jump at a restart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import structlog
from prometheus_client import Counter, Gauge

from tradebot.bus import Bus
from tradebot.clock import Clock, TimerHandle
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import InvariantError
from tradebot.events import BookUpdated, EquitySnapshot, Fill, FundingPayment, MarkPrice

log = structlog.get_logger(__name__)

EQUITY = Gauge("tradebot_portfolio_equity", "Equity in the account currency", ["currency"])
CASH = Gauge("tradebot_portfolio_cash", "Cash in the account currency", ["currency"])
FILLS = Counter("tradebot_fills_total", "Fills applied to the portfolio", ["venue", "symbol"])
INVARIANT_BREAKS = Counter("tradebot_portfolio_invariant_breaks_total",
                           "Accounting invariant violations (the process stops)")

ZERO = Decimal(0)
# Precision of the fold: enough that sums of prices x sizes never round.
PRECISION = 60
# Partial closes remove cost rounded to this exponent (the same amount leaves cost and enters
# realized PnL, so the accounting identity stays exact).
COST_QUANTUM = Decimal("1e-18")


@dataclass(slots=True)
class Position:
    """A signed position, the signed cost of its open part and its realized PnL."""

    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO

    @property
    def average_price(self) -> Decimal:
        """Return the average entry price of the open part (0 when flat)."""
        return self.cost / self.quantity if self.quantity else ZERO


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
        self.funding = ZERO
        self.fill_count = 0
        self.positions: dict[InstrumentId, Position] = {}
        self._traded: dict[str, Decimal] = defaultdict(Decimal)
        self._books: dict[InstrumentId, tuple[float, float]] = {}
        self._book_marks: dict[InstrumentId, tuple[tuple[float, float], Decimal]] = {}
        self._mark_prices: dict[InstrumentId, Decimal] = {}
        self._restored_marks: dict[InstrumentId, Decimal] = {}
        self._interval_ns = int(equity_interval_s * 1e9)
        self._timer: TimerHandle | None = None
        self._equity_metric = EQUITY.labels(currency)
        self._cash_metric = CASH.labels(currency)

    def set_starting_cash(self, cash: Decimal) -> None:
        """Start from the account's recorded starting cash (before any fill is folded in)."""
        if self.fill_count or self.funding:
            raise InvariantError("starting cash changed after fills were applied")
        self.starting_cash = cash
        self._cash = cash

    def restore_marks(self, marks: Mapping[InstrumentId, Decimal]) -> int:
        """Mark positions at these prices until their first book or mark price; return how
        many were kept (configured instruments, positive prices)."""
        self._restored_marks = {iid: price for iid, price in marks.items()
                                if iid in self._instruments and price > 0}
        return len(self._restored_marks)

    def start(self) -> None:
        """Subscribe to fills and marks and start the equity timer."""
        self._bus.subscribe(Fill, self.on_fill)
        self._bus.subscribe(FundingPayment, self.on_funding)
        self._bus.subscribe(BookUpdated, self._on_book)
        self._bus.subscribe(MarkPrice, self._on_mark)
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
        self._books[event.instrument] = (event.best_bid, event.best_ask)

    def _on_mark(self, event: MarkPrice) -> None:
        if event.mark_price > 0:
            self._mark_prices[event.instrument] = Decimal(repr(event.mark_price))

    # --- the view -------------------------------------------------------------------------

    def position(self, instrument: InstrumentId) -> Decimal:
        """Return the signed position size."""
        pos = self.positions.get(instrument)
        return pos.quantity if pos is not None else ZERO

    def cash(self) -> Decimal:
        """Return the account-currency cash."""
        return self._cash

    def mark(self, instrument: InstrumentId) -> Decimal | None:
        """Return the mark: the venue's mark price (perpetuals) or the exact book mid."""
        mark = self._mark_prices.get(instrument)
        if mark is not None:
            return mark
        book = self._books.get(instrument)
        if book is None:  # no book since the start: the mark stored before a restart, if any
            return self._restored_marks.get(instrument)
        if book[0] <= 0 or book[1] <= 0:
            return None
        cached = self._book_marks.get(instrument)
        if cached is not None and cached[0] is book:
            return cached[1]  # same book event: equity, margin and risk ask for it in turn
        # The floats were parsed from the venue's short decimal strings: repr is exact.
        mid = (Decimal(repr(book[0])) + Decimal(repr(book[1]))) / 2
        self._book_marks[instrument] = (book, mid)
        return mid

    def traded_notional(self, venue: str) -> Decimal:
        """Return the notional traded on a venue since the account was created (fee tiers)."""
        return self._traded.get(venue, ZERO)

    def unrealized(self) -> Decimal:
        """Return the unrealized PnL of all positions at the latest marks."""
        total = ZERO
        for iid, pos in self.positions.items():
            if pos.quantity:
                total += self._unrealized(iid, pos)
        return total

    def _unrealized(self, iid: InstrumentId, pos: Position) -> Decimal:
        mark = self.mark(iid)
        if mark is None:
            return ZERO
        return (pos.quantity * mark - pos.cost) * self._instruments[iid].contract_size

    def equity(self) -> Decimal:
        """Return the equity: cash plus spot holdings at mark plus perpetual unrealized PnL."""
        total = self._cash
        for iid, pos in self.positions.items():
            if not pos.quantity:
                continue
            inst = self._instruments[iid]
            if inst.kind is MarketKind.SPOT:
                mark = self.mark(iid)
                value = pos.cost if mark is None else pos.quantity * mark
                total += value * inst.contract_size
            else:
                total += self._unrealized(iid, pos)
        return total

    def check_invariant(self, context: str) -> None:
        """Raise InvariantError unless equity == start + realized + unrealized - fees - funding."""
        with localcontext(prec=PRECISION):
            equity = self.equity()
            expected = (self.starting_cash + self.realized + self.unrealized() - self.fees
                        - self.funding)
        if equity != expected:
            self._broken(f"{context}: equity {equity} != starting cash + realized + "
                         f"unrealized - fees - funding = {expected}")
        if self._cash < 0:
            self._broken(f"{context}: cash {self._cash} is negative")
        for iid, pos in self.positions.items():
            if pos.quantity < 0 and self._instruments[iid].kind is MarketKind.SPOT:
                self._broken(f"{context}: spot holding {pos.quantity} {iid} is negative")

    def _broken(self, message: str) -> None:
        INVARIANT_BREAKS.inc()
        log.error("portfolio_invariant_broken", error=message)
        raise InvariantError(message)

    # --- the fold --------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        """Apply one fill (live, replay and restart all come through here)."""
        inst = self._instruments.get(fill.instrument)
        if inst is None:
            raise InvariantError(f"fill {fill.fill_id} for unconfigured {fill.instrument}")
        if fill.quantity <= 0 or fill.price <= 0 or fill.fee_currency != self.currency:
            raise InvariantError(f"fill {fill.fill_id} is impossible: {fill}")
        with localcontext(prec=PRECISION):
            pos = self.positions.setdefault(fill.instrument, Position())
            signed = fill.quantity * fill.side
            realized = _fold(pos, signed, fill.price, inst.contract_size)
            self.realized += realized
            self.fees += fill.fee
            if inst.kind is MarketKind.SPOT:
                self._cash -= signed * fill.price * inst.contract_size + fill.fee
            else:
                self._cash += realized - fill.fee
            self._traded[fill.instrument.venue] += inst.notional(fill.quantity, fill.price)
        self.fill_count += 1
        FILLS.labels(fill.instrument.venue, fill.instrument.symbol).inc()
        self.check_invariant(f"fill {fill.fill_id}")
        self._cash_metric.set(float(self._cash))

    def on_funding(self, payment: FundingPayment) -> None:
        """Apply a funding payment on a perpetual position (paid: cash down)."""
        if payment.currency != self.currency:
            raise InvariantError(f"funding in {payment.currency}, account is {self.currency}")
        with localcontext(prec=PRECISION):
            self._cash -= payment.amount
            self.funding += payment.amount
        self.check_invariant(f"funding {payment.instrument} at {payment.ts_event}")

    def publish_equity(self) -> EquitySnapshot:
        """Publish the current equity point."""
        now = self._clock.now_ns()
        equity = self.equity()
        self._equity_metric.set(float(equity))
        self._cash_metric.set(float(self._cash))
        snap = EquitySnapshot(currency=self.currency, equity=equity, cash=self._cash,
                              realized_pnl=self.realized, unrealized_pnl=self.unrealized(),
                              fees=self.fees, ts_event=now, ts_init=now, marks=self._marks())
        self._bus.publish(snap)
        return snap

    def _marks(self) -> tuple[tuple[InstrumentId, Decimal], ...]:
        marks = ((iid, self.mark(iid)) for iid, pos in sorted(self.positions.items())
                 if pos.quantity)
        return tuple((iid, mark) for iid, mark in marks if mark is not None)

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
            "funding": str(self.funding),
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
        pos.quantity = qty + signed
        pos.cost += signed * price
        return ZERO
    direction = 1 if qty > 0 else -1
    closed = min(abs(signed), abs(qty))
    removed = pos.cost if closed == abs(qty) else \
        (pos.cost * closed / abs(qty)).quantize(COST_QUANTUM)
    realized = (closed * price * direction - removed) * contract_size
    pos.realized_pnl += realized
    pos.cost -= removed
    pos.quantity = qty + signed
    opened = signed + closed * direction  # the part of a flip that opens the other way
    if opened:
        pos.cost += opened * price
    return realized
