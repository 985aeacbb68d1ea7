"""Venue specs: every venue declares one, and the Feed base class reads it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import DataError
from tradebot.feeds import binance, okx
from tradebot.feeds.registry import FEEDS, SPECS, build_feed, venue_spec

LOCAL = "http://127.0.0.1:9"

# The instrument list URLs of each venue, by default and with a configured REST URL.
INSTRUMENT_URLS = {
    "binance": ["https://api.binance.com/api/v3/exchangeInfo"],
    "binance_usdm": ["https://fapi.binance.com/fapi/v1/exchangeInfo"],
    "binance_coinm": ["https://dapi.binance.com/dapi/v1/exchangeInfo"],
    "bybit": ["https://api.bybit.com/v5/market/instruments-info?category=spot&limit=1000"],
    "bybit_linear": [
        "https://api.bybit.com/v5/market/instruments-info?category=linear&limit=1000"],
    "bybit_inverse": [
        "https://api.bybit.com/v5/market/instruments-info?category=inverse&limit=1000"],
    "coinbase": [
        "https://api.coinbase.com/api/v3/brokerage/market/products?product_type=SPOT"],
    "coinbase_exchange": ["https://api.exchange.coinbase.com/products"],
    "kraken": ["https://api.kraken.com/0/public/AssetPairs"],
    "kraken_futures": ["https://futures.kraken.com/derivatives/api/v3/instruments"],
    "kucoin": ["https://api.kucoin.com/api/v2/symbols"],
    "okx": [f"https://www.okx.com/api/v5/public/instruments?instType={t}"
            for t in ("SPOT", "SWAP", "FUTURES")],
}


def fake(venue: str, n: int) -> list[Instrument]:
    return [Instrument(id=InstrumentId(f"A{k}-USDT", venue), venue_symbol=f"A{k}USDT",
                       kind=MarketKind.SPOT, base=f"A{k}", quote="USDT",
                       tick_size=Decimal("0.01"), lot_size=Decimal("0.001"),
                       min_notional=Decimal(0)) for k in range(n)]


def test_every_registered_venue_declares_its_own_spec() -> None:
    assert set(SPECS) == set(FEEDS) == set(INSTRUMENT_URLS)
    for venue, spec in SPECS.items():
        assert spec.venue == venue
        assert build_feed(venue, [], Bus(), SimClock()).spec is spec


def test_unknown_venues_are_named() -> None:
    with pytest.raises(ValueError, match="no feed for venue 'nowhere'"):
        venue_spec("nowhere")
    with pytest.raises(ValueError, match="unknown BinanceFeed venue 'okx'"):
        binance.BinanceFeed("okx", [], Bus(), SimClock())


@pytest.mark.parametrize("venue", sorted(INSTRUMENT_URLS))
def test_instrument_list_urls_follow_the_configured_rest_url(venue: str) -> None:
    spec = venue_spec(venue)
    assert spec.instrument_urls(FeedConfig(venue=venue)) == INSTRUMENT_URLS[venue]
    local = spec.instrument_urls(FeedConfig(venue=venue, rest_url=LOCAL))
    if venue.startswith("coinbase"):  # public product lists on Coinbase's own hosts
        assert local == INSTRUMENT_URLS[venue]
    else:
        assert local == [u.replace(spec.rest_url, LOCAL) for u in INSTRUMENT_URLS[venue]]


def test_connections_carry_at_most_the_declared_instruments() -> None:
    feed = okx.OkxFeed("okx", fake("okx", 60), Bus(), SimClock())
    assert [len(s) for s in feed.split_subscriptions()] == [25, 25, 10]
    # Binance counts streams: 3 per spot instrument under 1024, 4 per future under 200.
    assert binance.SPECS["binance"].max_instruments_per_connection == 341
    assert binance.SPECS["binance_usdm"].max_instruments_per_connection == 50
    assert build_feed("coinbase", fake("coinbase", 600), Bus(),
                      SimClock()).split_subscriptions() == [fake("coinbase", 600)]
    assert build_feed("kraken", [], Bus(), SimClock()).split_subscriptions() == [[]]


def test_rest_snapshots_come_from_the_spec_or_are_refused() -> None:
    inst = fake("okx", 1)[0]
    feed = build_feed("okx", [inst], Bus(), SimClock())
    assert feed.snapshot_url(FeedConfig(venue="okx", rest_url=LOCAL, snapshot_limit=5000),
                             inst) == f"{LOCAL}/api/v5/market/books?instId=A0USDT&sz=400"
    coinbase = build_feed("coinbase", fake("coinbase", 1), Bus(), SimClock())
    with pytest.raises(DataError, match="resync by resubscribing"):
        coinbase.snapshot_url(FeedConfig(venue="coinbase"), fake("coinbase", 1)[0])
    with pytest.raises(DataError, match="cannot bridge"):
        coinbase.parse_snapshot(b"{}", fake("coinbase", 1)[0], 1)


def test_keepalive_and_book_rules_are_declared() -> None:
    assert build_feed("okx", [], Bus(), SimClock()).keepalive() == ("ping", 20.0)
    assert build_feed("binance", [], Bus(), SimClock()).keepalive() is None
    assert venue_spec("okx").book_stale_after_s == 120.0
    assert {v for v, s in SPECS.items() if not s.snapshot_on_subscribe} == {
        "binance", "binance_usdm", "binance_coinm", "kucoin"}
    # A REST bridge exactly where books do not arrive on subscribing (and OKX, which has both).
    assert {v for v, s in SPECS.items() if s.snapshot_url is not None} == {
        "binance", "binance_usdm", "binance_coinm", "kucoin", "bybit", "bybit_linear",
        "bybit_inverse", "okx"}
