"""Feed classes and venue specs by venue name."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import Instrument
from tradebot.feeds import binance, bybit, coinbase, kraken, kraken_futures, kucoin, okx
from tradebot.feeds.base import Feed
from tradebot.feeds.spec import VenueSpec

FeedFactory = Callable[[str, Iterable[Instrument], Bus, Clock], Feed]

_CLASSES: tuple[type[Feed], ...] = (
    binance.BinanceFeed, bybit.BybitFeed, kucoin.KucoinFeed, coinbase.CoinbaseFeed,
    kraken.KrakenFeed, kraken_futures.KrakenFuturesFeed, okx.OkxFeed,
)
FEEDS: dict[str, FeedFactory] = {venue: cls for cls in _CLASSES for venue in cls.specs}
SPECS: dict[str, VenueSpec] = {venue: s for cls in _CLASSES for venue, s in cls.specs.items()}


def _unknown(venue: str) -> ValueError:
    return ValueError(f"no feed for venue {venue!r} (known: {', '.join(sorted(FEEDS))})")


def venue_spec(venue: str) -> VenueSpec:
    """Return the declared spec of `venue`; ValueError names an unknown venue."""
    spec = SPECS.get(venue)
    if spec is None:
        raise _unknown(venue)
    return spec


def build_feed(venue: str, instruments: Iterable[Instrument], bus: Bus, clock: Clock) -> Feed:
    """Build the feed of `venue`; ValueError names an unknown venue."""
    factory = FEEDS.get(venue)
    if factory is None:
        raise _unknown(venue)
    return factory(venue, instruments, bus, clock)
