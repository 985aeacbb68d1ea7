from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.conftest import BINANCE_FILES, data_file, metric
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import load_config
from tradebot.domain import InstrumentId, Side
from tradebot.events import BookInvalidated, BookUpdated, Quote, Trade
from tradebot.feeds import binance
from tradebot.feeds.replay import ReplayDriver, inspect, read_lines

INSTRUMENTS = load_config(environ={}).instrument_map()
SPOT_BTC = INSTRUMENTS[InstrumentId("BTC-USDT", "binance")]
USDM_BTC = INSTRUMENTS[InstrumentId("BTC-USDT-PERP", "binance_usdm")]


def first_frames(path: Path, count: int = 200) -> list[tuple[int, bytes]]:
    out = []
    for item in read_lines(path):
        out.append(item)
        if len(out) >= count:
            break
    return out


def test_spot_depth_frame_is_scanned_into_exact_units() -> None:
    frames = first_frames(data_file("binance_hftbacktest/spot/btcusdt_20240808.gz"), 1)
    frame = frames[0][1]
    stream, offset = binance.split_stream(frame)
    assert stream == "btcusdt@depth@100ms"
    scratch = binance.new_scratch()
    n = binance.scan_depth(frame, offset, SPOT_BTC, scratch)
    _e_ms, _t_ms, first, last, _prev = scratch.header.tolist()
    assert (first, last) == (50093239189, 50093239202)
    # "61737.63000000" at 2 price decimals, "0.00000000" size.
    assert scratch.levels[0].tolist() == [1, 6173763, 0]
    data = orjson.loads(frame)["data"]
    assert n == len(data["b"]) + len(data["a"])
    assert scratch.levels[n - 1].tolist() == [-1, 6193764, 2_000_000]  # "0.02000000" in 1e-8


def test_futures_depth_frame_carries_the_pu_chain() -> None:
    frames = first_frames(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"), 1)
    _stream, offset = binance.split_stream(frames[0][1])
    scratch = binance.new_scratch()
    binance.scan_depth(frames[0][1], offset, USDM_BTC, scratch)
    assert scratch.header.tolist()[2:] == [5123107832006, 5123107837557, 5123107831937]


def test_trade_and_book_ticker_payloads() -> None:
    trade = binance.parse_trade({"e": "trade", "t": 7, "p": "61837.63", "q": "0.02",
                                 "T": 1723161255342, "m": True}, SPOT_BTC, 5)
    assert trade == Trade(instrument=SPOT_BTC.id, price=61837.63, size=0.02,
                          aggressor=Side.SELL, trade_id="7", ts_event=1723161255342_000_000,
                          ts_init=5)
    agg = binance.parse_trade({"e": "aggTrade", "a": 9, "p": "1", "q": "2", "T": 1, "m": False},
                              SPOT_BTC, 5)
    assert agg.aggressor is Side.BUY and agg.trade_id == "9"
    quote = binance.parse_book_ticker({"u": 1, "b": "1.5", "B": "2", "a": "1.6", "A": "3"},
                                      SPOT_BTC, 42)
    assert quote.ts_event == 42 and quote.ask_price == 1.6


def test_rest_snapshot_is_parsed_with_its_update_id() -> None:
    body = b'{"lastUpdateId":10,"E":1,"T":2,"bids":[["100.1","1.5"]],"asks":[["100.2","0.001"]]}'
    snap = binance.parse_snapshot(body, USDM_BTC, 99)
    assert snap.sequence == 10 and snap.ts_event == 2_000_000
    assert snap.bids.tolist() == [[1001, 1500]] and snap.asks.tolist() == [[1002, 1]]


@pytest.mark.parametrize(("rule", "snapshot", "delta", "verdict"), [
    (binance.SpotRule(), 100, (90, 100, -1), "drop"),
    (binance.SpotRule(), 100, (95, 105, -1), "apply"),
    (binance.SpotRule(), 100, (101, 105, -1), "apply"),
    (binance.SpotRule(), 100, (102, 105, -1), "gap"),
    (binance.FuturesRule(), 100, (90, 99, 80), "drop"),
    (binance.FuturesRule(), 100, (95, 100, 90), "apply"),
    (binance.FuturesRule(), 100, (101, 105, 100), "gap"),
])
def test_bridge_rules(rule: binance.SpotRule, snapshot: int, delta: tuple[int, int, int],
                      verdict: str) -> None:
    assert rule.bridge(snapshot, *delta) == verdict


def test_follow_rules_spot_by_first_id_futures_by_pu() -> None:
    spot, fut = binance.SpotRule(), binance.FuturesRule()
    assert spot.follow(100, 101, 110, -1) == "apply"
    assert spot.follow(100, 102, 110, -1) == "gap"
    assert spot.follow(100, 90, 100, -1) == "drop"
    assert fut.follow(100, 150, 160, 100) == "apply"  # U need not be previous u + 1
    assert fut.follow(100, 150, 160, 99) == "gap"


def replay(paths: list[Path]) -> tuple[dict[str, object], Bus]:
    bus = Bus()
    clock = SimClock()
    recs = [inspect(p) for p in paths]
    feeds = {}
    for rec in recs:
        insts = [i for i in INSTRUMENTS.values()
                 if i.id.venue == rec.venue and i.venue_symbol in rec.depth_symbols]
        feeds[rec.venue] = binance.BinanceFeed(rec.venue, insts, bus, clock)
    import asyncio

    asyncio.run(ReplayDriver(feeds, clock, recs).run(progress=False))
    books = [b for f in feeds.values() for b in f.books.values()]
    return {"gaps": sum(b.gaps for b in books), "valid": all(b.valid for b in books),
            "errors": sum(sum(f.stats.parse_errors.values()) for f in feeds.values()),
            "dropped": sum(b.stale_dropped for b in books)}, bus


@pytest.mark.parametrize("relative", BINANCE_FILES)
def test_every_recording_bridges_with_zero_gaps(relative: str) -> None:
    result, bus = replay([data_file(f"binance_hftbacktest/{relative}")])
    assert result["gaps"] == 0 and result["valid"] and result["errors"] == 0
    assert 1 <= result["dropped"] <= 42  # the documented 1-42 stale diffs before the snapshot
    counts = bus.counts()
    assert counts["BookUpdated"] > 1000 and counts["Trade"] > 1000
    assert "BookInvalidated" not in counts


def _rewrite(src: Path, dst: Path, drop_index: int) -> None:
    depth_seen = 0
    with gzip.open(src, "rb") as fin, gzip.open(dst, "wb") as fout:
        for line in fin:
            if b"depthUpdate" in line:
                depth_seen += 1
                if depth_seen == drop_index:
                    continue
            fout.write(line)


def test_a_deleted_depth_message_is_reported_as_a_gap_and_invalidates_the_book(
        tmp_path: Path) -> None:
    before = metric("tradebot_book_gaps_total", venue="binance_usdm", symbol="BTC-USDT-PERP")
    damaged = tmp_path / "damaged.gz"
    _rewrite(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"), damaged, 500)
    result, bus = replay([damaged])
    assert result["gaps"] == 1 and not result["valid"]
    after = metric("tradebot_book_gaps_total", venue="binance_usdm", symbol="BTC-USDT-PERP")
    assert after - before == 1
    assert bus.counts()["BookInvalidated"] == 1


def test_an_invalid_book_never_reaches_a_subscriber(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.gz"
    _rewrite(data_file("binance_hftbacktest/spot/ethusdt_20240808.gz"), damaged, 300)
    bus = Bus()
    clock = SimClock()
    rec = inspect(damaged)
    inst = INSTRUMENTS[InstrumentId("ETH-USDT", "binance")]
    feed = binance.BinanceFeed("binance", [inst], bus, clock)
    seen: list[object] = []
    bus.subscribe(BookUpdated, lambda e: seen.append(("update", feed.books[inst.id].valid)))
    bus.subscribe(BookInvalidated, lambda e: seen.append(("invalid", e.reason)))
    import asyncio

    asyncio.run(ReplayDriver({"binance": feed}, clock, [rec]).run(progress=False))
    assert ("invalid", "gap") in seen
    assert all(valid for kind, valid in seen if kind == "update")
    assert seen[-1] == ("invalid", "gap")  # nothing published after the gap


def test_unknown_streams_and_garbage_are_counted_not_fatal() -> None:
    bus = Bus()
    feed = binance.BinanceFeed("binance", [SPOT_BTC], bus, SimClock())
    for frame in (b'{"stream":"dogeusdt@trade","data":{}}', b"not json",
                  b'{"stream":"btcusdt@trade","data":{"e":"trade"}}',
                  b'{"stream":"btcusdt@depth","data":{"b":[["x"]]}}'):
        feed.on_frame(frame, 1)
    assert feed.stats.messages == 4
    assert sum(feed.stats.parse_errors.values()) == 4


def test_quotes_are_decoded_only_when_someone_listens() -> None:
    bus = Bus()
    feed = binance.BinanceFeed("binance", [SPOT_BTC], bus, SimClock())
    frame = b'{"stream":"btcusdt@bookTicker","data":{"u":1,"b":"1","B":"1","a":"2","A":"1"}}'
    feed.on_frame(frame, 1)
    assert "Quote" not in bus.counts()
    got: list[Quote] = []
    bus.subscribe(Quote, got.append)
    feed.on_frame(frame, 2)
    assert got and got[0].bid_price == 1.0


def test_scratch_levels_are_not_kept_by_buffered_deltas() -> None:
    bus = Bus()
    feed = binance.BinanceFeed("binance", [SPOT_BTC], bus, SimClock())
    frame = (b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1,"U":5,"u":6,'
             b'"b":[["1.00","1"]],"a":[]}}')
    feed.on_frame(frame, 1)
    feed._scratch.levels[:] = -7
    buffered = feed.books[SPOT_BTC.id]._buffer[0]
    assert np.array_equal(buffered.levels, [[1, 100, 100_000_000]])


def test_subscriptions_split_so_no_connection_exceeds_the_stream_limit() -> None:
    from decimal import Decimal

    from tradebot.config import FeedConfig
    from tradebot.domain import Instrument, MarketKind

    insts = [Instrument(id=InstrumentId(f"C{i}-USDT-PERP", "binance_usdm"),
                        venue_symbol=f"C{i}USDT", kind=MarketKind.LINEAR_PERP, base=f"C{i}",
                        quote="USDT", tick_size=Decimal("0.1"), lot_size=Decimal("0.001"),
                        min_notional=Decimal(5)) for i in range(120)]
    feed = binance.BinanceFeed("binance_usdm", insts, Bus(), SimClock())
    shards = feed.split_subscriptions()
    assert [len(s) for s in shards] == [50, 50, 20]  # 4 streams each, 200 per connection
    config = FeedConfig(venue="binance_usdm", symbols=[])
    urls = [feed.connection_url(config, s) for s in shards]
    streams = [len(u.split("?streams=")[1].split("/")) for u in urls]
    assert streams == [200, 200, 80]
    assert "c0usdt@depth@100ms" in urls[0] and "c119usdt@trade" in urls[2]
    spot = binance.BinanceFeed("binance", [SPOT_BTC], Bus(), SimClock())
    assert spot.split_subscriptions() == [[SPOT_BTC]]
