from __future__ import annotations

import dataclasses

from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import load_config
from tradebot.domain import InstrumentId
from tradebot.events import FundingRate, MarkPrice
from tradebot.feeds import binance

INSTRUMENTS = load_config(environ={}).instrument_map()
USDM_BTC = INSTRUMENTS[InstrumentId("BTC-USDT-PERP", "binance_usdm")]
COINM_BTC = INSTRUMENTS[InstrumentId("BTC-USD-PERP", "binance_coinm")]
SPOT_BTC = INSTRUMENTS[InstrumentId("BTC-USDT", "binance")]

# Doc-derived: the `markPriceUpdate` payloads of Binance's USD-M and COIN-M "Mark Price Stream"
# pages (no websocket mark-price recording exists), inside the combined-stream wrapper.
USDM_FRAME = (b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
              b'"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265",'
              b'"r":"0.00038167","T":1562306400000}}')
# A delivery contract: no funding (`r` empty, `T` 0); the COIN-M page's example.
COINM_DELIVERY = {"e": "markPriceUpdate", "E": 1596095725000, "s": "BTCUSD_201225",
                  "p": "10934.62615417", "P": "10962.17178236", "i": "10933.62615417",
                  "r": "", "T": 0}


def test_usdm_mark_price_stream_publishes_mark_and_funding() -> None:
    bus = Bus()
    got: list[object] = []
    bus.subscribe(MarkPrice, got.append)
    bus.subscribe(FundingRate, got.append)
    feed = binance.BinanceFeed("binance_usdm", [USDM_BTC], bus, SimClock())
    feed.on_frame(USDM_FRAME, 9)
    ts = 1562305380000_000_000
    assert got == [
        MarkPrice(instrument=USDM_BTC.id, mark_price=11794.15, index_price=11784.62659091,
                  ts_event=ts, ts_init=9),
        FundingRate(instrument=USDM_BTC.id, rate=0.00038167,
                    next_funding_ns=1562306400000_000_000, ts_event=ts, ts_init=9),
    ]
    assert feed.stats.parse_errors == {}


def test_a_delivery_contract_has_a_mark_but_no_funding() -> None:
    inst = dataclasses.replace(COINM_BTC, venue_symbol="BTCUSD_201225")
    mark, funding = binance.parse_mark_price(COINM_DELIVERY, inst, 3)
    assert funding is None
    assert mark.mark_price == 10934.62615417 and mark.index_price == 10933.62615417


def test_mark_price_streams_are_subscribed_for_futures_only() -> None:
    assert "btcusdt@markPrice@1s" in binance.stream_names("binance_usdm", [USDM_BTC])
    assert "btcusd_perp@markPrice@1s" in binance.stream_names("binance_coinm", [COINM_BTC])
    assert not any("markPrice" in s for s in binance.stream_names("binance", [SPOT_BTC]))


def test_a_malformed_mark_price_frame_is_counted() -> None:
    feed = binance.BinanceFeed("binance_usdm", [USDM_BTC], Bus(), SimClock())
    feed.on_frame(b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","p":"x"}}', 1)
    assert sum(feed.stats.parse_errors.values()) == 1
