"""Kraken: v1 recorded frames (4269/4269 checksums), v2 documented messages, resync by
resubscribe, and damage to the stream detected."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import data_file
from tests.unit.feeds.test_replay import replay_files, replay_lines
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.domain import InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookInvalidated, Quote, Trade
from tradebot.feeds import kraken
from tradebot.feeds.replay import read_rest_lines
from tradebot.feeds.sync import BookState


def instruments() -> dict[str, kraken.Instrument]:
    body = next(read_rest_lines(data_file("cryptofeed/KRAKEN.0"))).payload
    return {i.venue_symbol: i for i in kraken.parse_instruments(body)}


def btc_usd() -> kraken.Instrument:
    return instruments()["BTC/USD"]


def test_asset_pairs_map_to_normalized_symbols() -> None:
    insts = instruments()
    eth_chf = insts["ETH/CHF"]
    assert eth_chf.id == InstrumentId("ETH-CHF", "kraken")
    assert eth_chf.kind is MarketKind.SPOT
    assert (eth_chf.price_decimals, eth_chf.size_decimals) == (2, 8)
    assert insts["BTC/CHF"].base == "BTC"  # XBT is Kraken's legacy code
    assert kraken.v1_pair(insts["BTC/CHF"]) == "XBT/CHF"
    assert kraken.normalize_pair("XDG/USD") == "DOGE-USD"


def test_recorded_v1_session_reproduces_every_checksum() -> None:
    feed = replay_files([data_file("cryptofeed/KRAKEN.ws.50.0")])
    assert sum(b.checksums_ok for b in feed.books.values()) == 4269
    assert sum(b.checksums_failed for b in feed.books.values()) == 0
    assert all(b.valid for b in feed.books.values()) and len(feed.books) == 10
    assert feed.stats.parse_errors == {}
    assert all(b.max_depth == 1000 for b in feed.books.values())


def test_recorded_v1_trades_and_tickers_parse() -> None:
    got: list[object] = []
    for name in ("KRAKEN.ws.48.0", "KRAKEN.ws.49.0"):
        feed = replay_files([data_file(f"cryptofeed/{name}")])
        assert feed.stats.parse_errors == {}
        got.append(feed.stats.messages)
    assert all(isinstance(n, int) and n > 10 for n in got)


def test_v1_trade_payload() -> None:
    inst = btc_usd()
    [trade] = kraken.parse_v1_trades(
        [["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""]], inst, 7)
    assert trade == Trade(instrument=inst.id, price=5541.2, size=0.15850568,
                          aggressor=Side.SELL, trade_id="1534614057.321597",
                          ts_event=1_534_614_057_321_597_000, ts_init=7)


def v2_feed() -> tuple[kraken.KrakenFeed, Bus]:
    bus = Bus()
    feed = kraken.KrakenFeed("kraken", [btc_usd()], bus, SimClock())
    feed.connection_url(FeedConfig(venue="kraken"), [btc_usd()])
    return feed, bus


def v2_doc_snapshot() -> bytes:
    vectors = json.loads(data_file("checksums/checksum_vectors.json").read_text())
    message = next(v for v in vectors if v["id"] == "kraken_ws_v2_book_checksum_doc_example")
    return json.dumps(message["message"]).encode()


def test_v2_documented_snapshot_verifies_its_checksum() -> None:
    feed, _ = v2_feed()
    feed.on_frame(v2_doc_snapshot(), 1)
    book = feed.books[btc_usd().id]
    assert book.valid and book.checksums_ok == 1
    assert book.book.levels(1, 1) == [(Decimal("45283.5"), Decimal("0.1"))]


def test_v2_update_with_a_wrong_checksum_resyncs_by_resubscribing() -> None:
    feed, bus = v2_feed()
    requests: list[str] = []
    feed.snapshot_needed = lambda _iid, reason: requests.append(reason)
    invalid: list[BookInvalidated] = []
    bus.subscribe(BookInvalidated, invalid.append)
    feed.on_frame(v2_doc_snapshot(), 1)
    update = (b'{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":'
              b'[{"price":45283.5,"qty":0.2}],"asks":[],"checksum":1,'
              b'"timestamp":"2023-10-06T17:35:55.440295Z"}]}')
    feed.on_frame(update, 2)
    book = feed.books[btc_usd().id]
    assert book.state is BookState.RESYNCING and requests == ["checksum"]
    assert [e.reason for e in invalid] == ["checksum"]
    sub = [json.loads(m) for m in feed.resync_messages(btc_usd(), "checksum")]
    assert [m["method"] for m in sub] == ["unsubscribe", "subscribe"]
    assert sub[1]["params"] == {"channel": "book", "symbol": ["BTC/USD"], "depth": 100}
    # The resubscribed snapshot is authoritative.
    feed.on_frame(v2_doc_snapshot(), 3)
    assert book.valid and book.checksums_ok == 2


def test_v2_trade_ticker_and_control_frames() -> None:
    feed, bus = v2_feed()
    got: list[object] = []
    bus.subscribe(Trade, got.append)
    bus.subscribe(Quote, got.append)
    feed.on_frame(b'{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
                  b'"price":26000.1,"qty":0.5,"ord_type":"market","trade_id":42,'
                  b'"timestamp":"2023-09-25T07:49:37.708706Z"}]}', 5)
    feed.on_frame(b'{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1.5,'
                  b'"bid_qty":2,"ask":1.6,"ask_qty":3,"last":1.55}]}', 6)
    for frame in (b'{"channel":"heartbeat"}', b'{"method":"pong","req_id":1}',
                  b'{"method":"subscribe","result":{"channel":"book"},"success":true}'):
        feed.on_frame(frame, 7)
    assert got[0] == Trade(instrument=btc_usd().id, price=26000.1, size=0.5,
                           aggressor=Side.BUY, trade_id="42",
                           ts_event=1_695_628_177_708_706_000, ts_init=5)
    assert isinstance(got[1], Quote) and got[1].ask_size == 3.0
    assert feed.stats.parse_errors == {}
    feed.on_frame(b'{"method":"subscribe","success":false,"error":"Currency pair not supported"}',
                  8)
    assert feed.stats.parse_errors == {"DataError": 1}


def test_keepalive_subscriptions_and_v1_mode() -> None:
    feed, _ = v2_feed()
    assert feed.keepalive() == ('{"method":"ping"}', 15.0)
    subscribed = list(feed.instruments.values())
    assert [json.loads(m)["params"]["channel"] for m in feed.connection_messages(subscribed)] \
        == ["book", "trade", "ticker"]
    config = FeedConfig(venue="kraken", ws_url="ws://127.0.0.1:1/")
    assert feed.connection_url(config, subscribed) == "ws://127.0.0.1:1/"
    assert feed.v1 and json.loads(feed.connection_messages(subscribed)[0])["pair"] == \
        ["XBT/USD"]
    assert feed.keepalive()[0] == '{"event":"ping"}'
    with pytest.raises(DataError):
        feed.snapshot_url(FeedConfig(venue="kraken"), btc_usd())


# --- damage to the recorded stream ---------------------------------------------------------

PAIR = re.compile(rb',"([^"]+)"\]\s*$')
CHECKSUM = re.compile(rb'"c":"(\d+)"')


def kraken_lines() -> tuple[list[bytes], list[int]]:
    lines = data_file("cryptofeed/KRAKEN.ws.50.0").read_bytes().splitlines(keepends=True)
    # Updates that changed the checksummed top 10 (the only integrity signal Kraken sends):
    # a lost update beyond the top 10 cannot be seen until its level reaches the top.
    last: dict[bytes, bytes] = {}
    visible = []
    for i, line in enumerate(lines):
        pair, crc = PAIR.search(line), CHECKSUM.search(line)
        if pair is None or crc is None:
            continue
        if last.get(pair.group(1)) not in (None, crc.group(1)):
            visible.append(i)
        last[pair.group(1)] = crc.group(1)
    return lines, visible


def damaged(feed: kraken.Feed) -> bool:
    return any(b.checksums_failed or not b.valid for b in feed.books.values())


def final_books(feed: kraken.Feed) -> dict[str, list]:
    return {str(i): (b.book.levels(1, 5000), b.book.levels(-1, 5000))
            for i, b in feed.books.items()}


@pytest.mark.parametrize("pick", [0, 101, 1003, 2000, 3100])
def test_a_deleted_update_is_detected_or_left_no_trace(tmp_path: Path, pick: int) -> None:
    lines, visible = kraken_lines()
    k = visible[pick]
    feed = replay_lines([*lines[:k], *lines[k + 1:]], tmp_path, "KRAKEN")
    clean = replay_lines(lines, tmp_path, "KRAKEN")
    # Undetected only where later updates overwrote every level it touched.
    assert damaged(feed) or final_books(feed) == final_books(clean)


@pytest.mark.parametrize("pick", [0, 700, 3000])
def test_a_duplicated_update_is_detected(tmp_path: Path, pick: int) -> None:
    lines, visible = kraken_lines()
    k = visible[pick]
    feed = replay_lines([*lines[:k + 1], lines[k], *lines[k + 1:]], tmp_path, "KRAKEN")
    assert damaged(feed)


@pytest.mark.parametrize("pick", [5, 900, 2000])
def test_two_updates_of_a_book_swapped_are_detected(tmp_path: Path, pick: int) -> None:
    lines, visible = kraken_lines()
    k = visible[pick]
    pair = PAIR.search(lines[k])
    assert pair is not None
    j = next(i for i in visible if i > k and PAIR.search(lines[i]).group(1) == pair.group(1))
    swapped = [*lines[:k], lines[j], *lines[k + 1:j], lines[k], *lines[j + 1:]]
    assert damaged(replay_lines(swapped, tmp_path, "KRAKEN"))


def test_the_clean_recording_is_not_damaged(tmp_path: Path) -> None:
    lines, _ = kraken_lines()
    assert not damaged(replay_lines(lines, tmp_path, "KRAKEN"))


def test_levels_beyond_the_subscribed_depth_are_truncated() -> None:
    feed, _ = v2_feed()
    feed.on_frame(v2_doc_snapshot(), 1)
    book = feed.books[btc_usd().id]
    book.max_depth = 10
    levels = np.array([[1, 100, 5]], np.int64)  # far below the 10 bids
    book.on_delta(levels, 1, -1, -1, -1, 2, 2)
    assert int(book.book.counts[0]) == 10
