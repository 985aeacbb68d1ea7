"""Maker and taker rates per venue, with volume tiers."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from tradebot.config import FeeConfig
from tradebot.domain import InstrumentId, Liquidity


class FeeSchedule:
    """Pick the rate for a venue and liquidity from the account's traded notional there."""

    def __init__(self, fees: Mapping[str, FeeConfig]) -> None:
        self._fees = fees

    def rate(self, venue: str, liquidity: Liquidity, traded_notional: Decimal) -> Decimal:
        """Return the fee rate (negative: a maker rebate); 0 for a venue with no schedule."""
        cfg = self._fees.get(venue)
        if cfg is None:
            return Decimal(0)
        maker, taker = cfg.maker, cfg.taker
        best = Decimal(-1)
        for tier in cfg.tiers:
            if best < tier.min_volume <= traded_notional:
                best, maker, taker = tier.min_volume, tier.maker, tier.taker
        return maker if liquidity is Liquidity.MAKER else taker

    def taker_rate(self, instrument: InstrumentId) -> Decimal:
        """Return the base taker rate of the instrument's venue (what a pre-trade check
        assumes, before any volume tier); 0 for a venue with no schedule."""
        cfg = self._fees.get(instrument.venue)
        return cfg.taker if cfg is not None else Decimal(0)

    def max_rate(self, venue: str) -> Decimal:
        """Return the highest rate any fill could pay (for balance reservations)."""
        cfg = self._fees.get(venue)
        if cfg is None:
            return Decimal(0)
        rates = [cfg.maker, cfg.taker] + [r for t in cfg.tiers for r in (t.maker, t.taker)]
        return max(Decimal(0), *rates)
