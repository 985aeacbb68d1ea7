"""The simulated venue's view of the account: the portfolio plus what is not yet reported.

Fills are matched at the venue before their reports reach the portfolio (response latency), so
the venue adds the matched-but-undelivered fills to the portfolio's figures, and reserves what
resting orders may still spend: cash for spot buys, holdings for spot sells, initial margin
for perpetual orders.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Protocol

from tradebot.domain import Instrument, InstrumentId, MarketKind

ZERO = Decimal(0)


class AccountView(Protocol):
    """What the venue reads of the portfolio."""

    def position(self, instrument: InstrumentId) -> Decimal:
        """Return the signed position."""

    def cash(self) -> Decimal:
        """Return the account-currency cash."""

    def equity(self) -> Decimal:
        """Return the equity at the latest marks."""

    def mark(self, instrument: InstrumentId) -> Decimal | None:
        """Return the latest mark price."""

    def traded_notional(self, venue: str) -> Decimal:
        """Return the notional traded on a venue so far (fee tiers)."""


class VenueAccount:
    """Pending fills, reservations and margin for the simulated venue's checks."""

    def __init__(self, view: AccountView, instruments: Mapping[InstrumentId, Instrument],
                 leverage: Decimal, maintenance: Decimal) -> None:
        self.view = view
        self._perps = [i for i in instruments.values() if i.kind is not MarketKind.SPOT]
        self.leverage = leverage
        self.maintenance = maintenance
        self.pending_qty: dict[InstrumentId, Decimal] = defaultdict(Decimal)
        self.pending_cash = ZERO
        self.pending_notional: dict[str, Decimal] = defaultdict(Decimal)

    def add_pending(self, inst: Instrument, signed_qty: Decimal, cash: Decimal,
                    notional: Decimal) -> None:
        """Count a matched fill until its report reaches the portfolio (then call with -)."""
        self.pending_qty[inst.id] += signed_qty
        self.pending_cash += cash
        self.pending_notional[inst.id.venue] += notional

    def position(self, iid: InstrumentId) -> Decimal:
        """Return the position including undelivered fills."""
        return self.view.position(iid) + self.pending_qty.get(iid, ZERO)

    def traded_notional(self, venue: str) -> Decimal:
        """Return the venue's traded notional including undelivered fills."""
        return self.view.traded_notional(venue) + self.pending_notional.get(venue, ZERO)

    def spot_cash_free(self, reserved: Decimal) -> Decimal:
        """Return cash not spent by undelivered fills or reserved by open buys."""
        return self.view.cash() + self.pending_cash - reserved

    def margin_free(self, open_margin: Decimal) -> Decimal:
        """Return equity not tied up as initial margin by positions and open orders."""
        used = sum((self.initial_margin(i.id, abs(self.position(i.id)) * i.contract_size)
                    for i in self._perps if self.position(i.id)), ZERO)
        return self.view.equity() - used - open_margin

    def initial_margin(self, iid: InstrumentId, quantity: Decimal,
                       price: Decimal | None = None) -> Decimal:
        """Return the initial margin of `quantity` contracts at `price` (default: the mark)."""
        px = price if price is not None else self.view.mark(iid)
        return ZERO if px is None else quantity * px / self.leverage

    def maintenance_margin(self) -> Decimal:
        """Return the maintenance margin of every perpetual position at its mark."""
        total = ZERO
        for inst in self._perps:
            qty = self.position(inst.id)
            if not qty:
                continue  # no mark needed (the liquidator asks every 100 ms)
            mark = self.view.mark(inst.id)
            if mark is not None:
                total += abs(qty) * mark * inst.contract_size * self.maintenance
        return total
