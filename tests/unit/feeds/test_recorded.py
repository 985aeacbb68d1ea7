"""The replay side of a venue: instrument lists, subscriptions and snapshot URLs in recordings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.feeds import bybit, kraken
from tradebot.feeds.recorded import is_instrument_list, recorded_instruments, snapshot_instrument
from tradebot.feeds.registry import SPECS


def inst(venue: str, symbol: str, venue_symbol: str) -> Instrument:
    base, quote = symbol.split("-")[:2]
    return Instrument(id=InstrumentId(symbol, venue), venue_symbol=venue_symbol,
                      kind=MarketKind.SPOT, base=base, quote=quote, tick_size=Decimal("0.01"),
                      lot_size=Decimal("0.001"), min_notional=Decimal(0))


@pytest.mark.parametrize("venue", sorted(SPECS))
def test_the_venues_own_instrument_list_urls_are_recognised(venue: str) -> None:
    for url in SPECS[venue].instrument_urls(FeedConfig(venue=venue)):
        assert is_instrument_list(venue, url)


@pytest.mark.parametrize(("venue", "url", "listed"), [
    ("bybit", "https://api.bybit.com/v2/public/symbols", True),  # retired v2
    ("kucoin", "https://api.kucoin.com/api/v1/symbols", True),  # v1 beside today's v2
    ("kucoin", "https://api.kucoin.com/api/v1/market/orderbook/level2_100?symbol=BTC-USDT",
     False),
    ("coinbase_exchange", "https://api.exchange.coinbase.com/products/BTC-USD/book", False),
    ("binance", "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000", False),
    ("okx", "https://www.okx.com/api/v5/market/books?instId=BTC-USDT&sz=400", False),
])
def test_depth_snapshots_are_not_instrument_lists(venue: str, url: str, listed: bool) -> None:
    assert is_instrument_list(venue, url) is listed


def test_subscribed_instruments_are_read_in_each_venues_own_form() -> None:
    btc, eth = inst("binance", "BTC-USDT", "BTCUSDT"), inst("binance", "ETH-USDT", "ETHUSDT")
    url = b"wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@trade"
    assert recorded_instruments("binance", [url], [btc, eth]) == [btc]
    xrp = inst("bybit_linear", "XRP-USDT-PERP", "XRPUSDT")
    sent = bybit.subscribe_requests(["orderbook.50.XRPUSDT"])[0].encode()
    assert recorded_instruments("bybit_linear", [sent], [xrp]) == [xrp]
    xbt = inst("kraken", "BTC-USD", "BTC/USD")
    v1 = kraken.subscribe_v1("book", ["XBT/USD"]).encode()
    assert recorded_instruments("kraken", [v1], [xbt]) == [xbt]
    okx = inst("okx", "BTC-USDT", "BTC-USDT")
    sent = b'{"op":"subscribe","args":[{"channel":"books","instId":"btc-usdt"}]}'
    assert recorded_instruments("okx", [sent], [okx]) == [okx]
    assert recorded_instruments("okx", [b"ping"], [okx]) == []


def test_a_snapshot_url_names_its_instrument_by_query_value() -> None:
    btc, eth = inst("binance", "BTC-USDT", "BTCUSDT"), inst("binance", "ETH-USDT", "ETHUSDT")
    url = "https://api.binance.com/api/v3/depth?symbol=ETHUSDT&limit=1000"
    assert snapshot_instrument(url, [btc, eth]) is eth
    assert snapshot_instrument("https://api.binance.com/api/v3/depth?symbol=X", [btc]) is None
