"""Feed classes by venue name."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import Instrument
from tradebot.feeds.base import Feed
from tradebot.feeds.binance import VENUES as BINANCE_VENUES
from tradebot.feeds.binance import BinanceFeed
from tradebot.feeds.bybit import VENUES as BYBIT_VENUES
from tradebot.feeds.bybit import BybitFeed
from tradebot.feeds.coinbase import VENUES as COINBASE_VENUES
from tradebot.feeds.coinbase import CoinbaseFeed
from tradebot.feeds.kraken import VENUES as KRAKEN_VENUES
from tradebot.feeds.kraken import KrakenFeed
from tradebot.feeds.kraken_futures import VENUES as KRAKEN_FUTURES_VENUES
from tradebot.feeds.kraken_futures import KrakenFuturesFeed
from tradebot.feeds.kucoin import VENUES as KUCOIN_VENUES
from tradebot.feeds.kucoin import KucoinFeed
from tradebot.feeds.okx import VENUES as OKX_VENUES
from tradebot.feeds.okx import OkxFeed

FeedFactory = Callable[[str, Iterable[Instrument], Bus, Clock], Feed]

FEEDS: dict[str, FeedFactory] = {venue: BinanceFeed for venue in BINANCE_VENUES}
FEEDS.update({venue: BybitFeed for venue in BYBIT_VENUES})
FEEDS.update({venue: KucoinFeed for venue in KUCOIN_VENUES})
FEEDS.update({venue: CoinbaseFeed for venue in COINBASE_VENUES})
FEEDS.update({venue: KrakenFeed for venue in KRAKEN_VENUES})
FEEDS.update({venue: KrakenFuturesFeed for venue in KRAKEN_FUTURES_VENUES})
FEEDS.update({venue: OkxFeed for venue in OKX_VENUES})


def feed_class(venue: str) -> type[Feed]:
    """Return the Feed class of `venue` (its class-level hooks: instrument lists)."""
    factory = FEEDS.get(venue)
    if not isinstance(factory, type):
        raise ValueError(f"no feed for venue {venue!r} (known: {', '.join(sorted(FEEDS))})")
    return factory


def build_feed(venue: str, instruments: Iterable[Instrument], bus: Bus, clock: Clock) -> Feed:
    """Build the feed of `venue`; ValueError names an unknown venue."""
    factory = FEEDS.get(venue)
    if factory is None:
        raise ValueError(f"no feed for venue {venue!r} (known: {', '.join(sorted(FEEDS))})")
    return factory(venue, instruments, bus, clock)
