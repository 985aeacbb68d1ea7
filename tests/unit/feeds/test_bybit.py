from __future__ import annotations

import asyncio
import zipfile
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.conftest import data_file, metric
from tests.unit.feeds.test_kucoin import ReferenceBook, book_matches, rest_body
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.domain import InstrumentId, MarketKind, Side
from tradebot.events import BookInvalidated, BookUpdated, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds import bybit
from tradebot.feeds.replay import ReplayDriver, inspect

# Doc-derived (Bybit v5 docs, GET /v5/market/instruments-info?category=linear): the shape of
# the documented response; BTCUSDT's filters as documented, XRPUSDT's as Bybit lists them
# (tick 0.0001, step 1), which the recorded XRPUSDT book's strings agree with.
INSTRUMENTS_INFO = orjson.dumps({
    "retCode": 0, "retMsg": "OK", "result": {"category": "linear", "nextPageCursor": "", "list": [
        {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
         "baseCoin": "BTC", "quoteCoin": "USDT", "launchTime": "1585526400000",
         "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": "2",
         "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
         "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
         "lotSizeFilter": {"maxOrderQty": "100.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                           "postOnlyMaxOrderQty": "1000.000", "maxMktOrderQty": "100.000",
                           "minNotionalValue": "5"},
         "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT"},
        {"symbol": "XRPUSDT", "contractType": "LinearPerpetual", "status": "Trading",
         "baseCoin": "XRP", "quoteCoin": "USDT", "priceScale": "4",
         "priceFilter": {"minPrice": "0.0001", "maxPrice": "199.9998", "tickSize": "0.0001"},
         "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "1", "qtyStep": "1",
                           "minNotionalValue": "5"}, "settleCoin": "USDT"},
        {"symbol": "BTC-27DEC24", "contractType": "LinearFutures", "status": "Trading",
         "baseCoin": "BTC", "quoteCoin": "USDT",
         "priceFilter": {"tickSize": "0.50"},
         "lotSizeFilter": {"qtyStep": "0.001", "minNotionalValue": "5"}},
    ]}, "retExtInfo": {}, "time": 1672712495660})
LINEAR = {i.venue_symbol: i for i in bybit.parse_instruments(INSTRUMENTS_INFO, "bybit_linear")}
XRP = LINEAR["XRPUSDT"]
BTC = LINEAR["BTCUSDT"]

# Doc-derived frames (Bybit v5 docs, websocket public "Trade" and "Ticker" examples); no v5
# trade or ticker recording exists. The delta is written in the documented delta form.
TRADE_FRAME = (b'{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{'
               b'"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50",'
               b'"L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false}]}')
TICKER_SNAPSHOT = (
    b'{"topic":"tickers.BTCUSDT","type":"snapshot","data":{"symbol":"BTCUSDT",'
    b'"tickDirection":"PlusTick","price24hPcnt":"0.017103","lastPrice":"17216.00",'
    b'"prevPrice24h":"16926.50","highPrice24h":"17281.50","lowPrice24h":"16915.00",'
    b'"prevPrice1h":"17238.00","markPrice":"17217.33","indexPrice":"17227.36",'
    b'"openInterest":"68744.761","openInterestValue":"1183601235.91",'
    b'"turnover24h":"1570383121.943499","volume24h":"91705.276",'
    b'"nextFundingTime":"1673280000000","fundingRate":"-0.000212","bid1Price":"17215.50",'
    b'"bid1Size":"84.489","ask1Price":"17216.00","ask1Size":"83.020"},'
    b'"cs":24987956059,"ts":1673272861686}')
TICKER_DELTA = (b'{"topic":"tickers.BTCUSDT","type":"delta","data":{"symbol":"BTCUSDT",'
                b'"markPrice":"17218.01","bid1Price":"17215.90"},"cs":24987956100,'
                b'"ts":1673272862686}')
# Doc-derived: GET /v5/market/orderbook response shape.
REST_SNAPSHOT = (b'{"retCode":0,"retMsg":"OK","result":{"s":"BTCUSDT",'
                 b'"a":[["65557.7","16.606"]],"b":[["65485.4","47.081"],'
                 b'["65485.3","0.005"]],"ts":1716863719031,"u":230704,"seq":1432604333,'
                 b'"cts":1716863718905},"retExtInfo":{},"time":1716863719382}')


def dump() -> list[bytes]:
    path = data_file("bybit_v5/xrpusdt-ob500.data.zip")
    with zipfile.ZipFile(path) as archive:
        return archive.read(archive.namelist()[0]).splitlines()


def feed_for(bus: Bus | None = None) -> bybit.BybitFeed:
    return bybit.BybitFeed("bybit_linear", [XRP], bus or Bus(), SimClock(), depth=500)


def play(frames: list[bytes], feed: bybit.BybitFeed) -> None:
    for n, frame in enumerate(frames):
        feed.on_frame(frame, 1_000 + n)


def reference(frames: list[bytes]) -> ReferenceBook:
    ref = ReferenceBook()
    for frame in frames:
        doc = orjson.loads(frame)
        data = doc["data"]
        if doc["type"] == "snapshot":
            ref.load(data["b"], data["a"])
        else:
            ref.apply([(1, p, s) for p, s in data["b"]] + [(-1, p, s) for p, s in data["a"]])
    return ref


def test_instruments_map_to_normalised_perpetual_symbols() -> None:
    assert set(LINEAR) == {"BTCUSDT", "XRPUSDT"}  # the dated future is skipped
    assert BTC.id == InstrumentId("BTC-USDT-PERP", "bybit_linear")
    assert (BTC.tick_size, BTC.lot_size, BTC.min_notional) == (
        Decimal("0.10"), Decimal("0.001"), Decimal(5))
    assert BTC.kind is MarketKind.LINEAR_PERP
    assert bybit.venue_symbol("BTC-USDT-PERP") == "BTCUSDT" == bybit.venue_symbol("BTC-USDT")
    with pytest.raises(ValueError, match="BASE-QUOTE"):
        bybit.venue_symbol("BTCUSDT")


def test_legacy_v2_symbol_list_is_read_for_the_recorded_contracts() -> None:
    body = rest_body(data_file("cryptofeed/BYBIT.0"))
    inverse = {i.venue_symbol: i for i in bybit.parse_instruments(body, "bybit_inverse")}
    linear = {i.venue_symbol: i for i in bybit.parse_instruments(body, "bybit_linear")}
    assert set(inverse) == {"BTCUSD", "ETHUSD", "EOSUSD", "XRPUSD"}  # dated BTCUSDU21 skipped
    assert inverse["BTCUSD"].id == InstrumentId("BTC-USD-PERP", "bybit_inverse")
    assert inverse["BTCUSD"].tick_size == Decimal("0.5")
    assert linear["LTCUSDT"].lot_size == Decimal("0.1") and len(linear) == 9


def test_recorded_book_frames_are_scanned_into_exact_units() -> None:
    frames = dump()
    scratch = bybit.Scratch.new(4)
    snap = bybit.scan_book(frames[0], XRP, scratch)
    assert snap.snapshot and snap.n_levels == 1000 and snap.update_id == 20254869
    assert scratch.levels[0].tolist() == [1, 19531, 6203]  # "1.9531", "6203"
    delta = bybit.scan_book(frames[1], XRP, scratch)
    assert not delta.snapshot and delta.update_id == 20254870
    assert delta.n_levels == 35 and delta.ts_event_ms == orjson.loads(frames[1])["cts"]


def test_dump_replays_with_zero_gaps_and_the_book_matches_a_plain_model() -> None:
    frames = dump()
    bus = Bus()
    feed = feed_for(bus)
    play(frames, feed)
    book = feed.books[XRP.id]
    assert book.valid and book.gaps == 0 and feed.stats.parse_errors == {}
    assert book.last_seq == 20254869 + 49
    assert bus.counts()["BookUpdated"] == 50
    assert book_matches(book.book, reference(frames))


@pytest.mark.parametrize("damage", ["delete", "duplicate", "reorder"])
def test_one_damaged_delta_is_a_gap_and_nothing_is_published_after_it(damage: str) -> None:
    frames = dump()
    if damage == "delete":
        del frames[20]
    elif damage == "duplicate":
        frames.insert(21, frames[20])
    else:
        frames[20], frames[21] = frames[21], frames[20]
    bus = Bus()
    seen: list[str] = []
    bus.subscribe(BookUpdated, lambda e: seen.append("update"))
    bus.subscribe(BookInvalidated, lambda e: seen.append(e.reason))
    before = metric("tradebot_book_gaps_total", venue="bybit_linear", symbol="XRP-USDT-PERP")
    feed = feed_for(bus)
    requested: list[tuple[InstrumentId, str]] = []
    feed.snapshot_needed = lambda iid, reason: requested.append((iid, reason))
    play(frames, feed)
    book = feed.books[XRP.id]
    assert book.gaps == 1 and not book.valid
    assert metric("tradebot_book_gaps_total", venue="bybit_linear",
                  symbol="XRP-USDT-PERP") - before == 1
    # Published: the snapshot and each delta before the damage (frame 20 itself for a duplicate).
    assert seen[-1] == "gap" and seen.count("update") == (21 if damage == "duplicate" else 20)
    assert requested == [(XRP.id, "gap")]
    assert feed.resync_messages(XRP, "gap") == [
        '{"op":"unsubscribe","args":["orderbook.500.XRPUSDT"]}',
        '{"op":"subscribe","args":["orderbook.500.XRPUSDT"]}']


def _snapshot_frame(ref: ReferenceBook, update_id: int) -> bytes:
    def side(s: int) -> list[list[str]]:
        return [[str(p), str(q)] for p, q in ref.top(s, 500)]
    return orjson.dumps({"topic": "orderbook.500.XRPUSDT", "type": "snapshot",
                         "ts": 1733011200999, "data": {"s": "XRPUSDT", "b": side(1),
                                                       "a": side(-1), "u": update_id,
                                                       "seq": 130020239999},
                         "cts": 1733011200998})


def test_a_new_snapshot_repairs_the_book_after_a_gap() -> None:
    frames = dump()
    feed = feed_for()
    play(frames[:20] + frames[21:30], feed)  # frame 20 lost
    book = feed.books[XRP.id]
    assert not book.valid and book.gaps == 1
    update_id = orjson.loads(frames[29])["data"]["u"]
    feed.on_frame(_snapshot_frame(reference(frames[:30]), update_id), 5_000)
    play(frames[30:], feed)
    assert book.valid and book.gaps == 1 and book.snapshots == 2
    assert book.last_seq == 20254869 + 49
    assert book_matches(book.book, reference(frames))


def test_update_id_one_replaces_the_book() -> None:
    frames = dump()
    feed = feed_for()
    play(frames[:5], feed)
    restart = orjson.loads(frames[5])
    restart["data"]["u"] = 1
    restart["data"]["b"], restart["data"]["a"] = [["1.9000", "10"]], [["1.9100", "20"]]
    feed.on_frame(orjson.dumps(restart), 9)
    book = feed.books[XRP.id]
    assert book.valid and book.last_seq == 1 and book.snapshots == 2
    assert book.book.levels(1, 5) == [(Decimal("1.9"), Decimal(10))]
    assert book.book.levels(-1, 5) == [(Decimal("1.91"), Decimal(20))]


def test_trades_and_ticker_deltas_become_trades_marks_funding_and_quotes() -> None:
    bus = Bus()
    feed = bybit.BybitFeed("bybit_linear", [BTC], bus, SimClock())
    got: list[object] = []
    for topic in (Trade, MarkPrice, FundingRate, Quote):
        bus.subscribe(topic, got.append)
    feed.on_frame(TRADE_FRAME, 1)
    assert got == [Trade(instrument=BTC.id, price=16578.5, size=0.001, aggressor=Side.BUY,
                         trade_id="20f43950-d8dd-5b31-9112-a178eb6023af",
                         ts_event=1672304486865_000_000, ts_init=1)]
    got.clear()
    feed.on_frame(TICKER_SNAPSHOT, 2)
    ts = 1673272861686_000_000
    assert got == [
        MarkPrice(instrument=BTC.id, mark_price=17217.33, index_price=17227.36, ts_event=ts,
                  ts_init=2),
        FundingRate(instrument=BTC.id, rate=-0.000212, next_funding_ns=1673280000000_000_000,
                    ts_event=ts, ts_init=2),
        Quote(instrument=BTC.id, bid_price=17215.5, bid_size=84.489, ask_price=17216.0,
              ask_size=83.02, ts_event=ts, ts_init=2),
    ]
    got.clear()
    feed.on_frame(TICKER_DELTA, 3)  # only mark and bid changed: no funding event
    assert [type(e).__name__ for e in got] == ["MarkPrice", "Quote"]
    quote = got[1]
    assert isinstance(quote, Quote) and quote.bid_price == 17215.9 and quote.ask_size == 83.02


def test_rest_snapshot_carries_the_update_id() -> None:
    snap = bybit.parse_snapshot(REST_SNAPSHOT, BTC, 5)
    assert snap.sequence == 230704 and snap.ts_event == 1716863718905_000_000
    assert snap.bids.tolist() == [[654854, 47081], [654853, 5]]
    assert snap.asks.tolist() == [[655577, 16606]]


def test_rest_snapshot_with_finer_sizes_than_the_lot_is_rejected() -> None:
    with pytest.raises(bybit.DataError):
        bybit.parse_snapshot(REST_SNAPSHOT.replace(b'"0.005"', b'"0.0051"'), BTC, 5)


def test_subscriptions_respect_the_per_request_and_per_connection_limits() -> None:
    insts = [XRP] * 9
    requests = bybit.subscribe_requests(bybit.topics("bybit_linear", insts, 50))
    assert len(requests) == 3 and all(len(orjson.loads(r)["args"]) <= 10 for r in requests)
    many = [BTC] * 400  # 65 characters of args each: two connections
    groups = bybit.split_by_args("bybit_linear", many, 1000)
    assert [len(g) for g in groups] == [323, 77]
    assert all(sum(len(t) + 3 for t in bybit.topics("bybit_linear", g, 1000))
               <= bybit.MAX_ARGS_CHARS for g in groups)
    spot = bybit.topics("bybit", [XRP], 50)
    assert spot == ["orderbook.50.XRPUSDT", "publicTrade.XRPUSDT"]  # spot tickers carry no mark
    feed = feed_for()
    assert feed.keepalive() == ('{"op":"ping"}', 20.0)


def test_control_replies_pass_and_rejected_subscriptions_are_counted() -> None:
    feed = feed_for()
    for frame in (b'{"success":true,"ret_msg":"pong","conn_id":"0970e817","req_id":"","op":"ping"}',
                  b'{"success":true,"ret_msg":"","conn_id":"a1","req_id":"","op":"subscribe"}',
                  b'{"op":"pong","args":["1672916271846"],"conn_id":"ce3dpomvha7dha97tvp0"}'):
        feed.on_frame(frame, 1)
    assert feed.stats.parse_errors == {}
    feed.on_frame(b'{"success":false,"ret_msg":"error:handler not found","conn_id":"a1",'
                  b'"req_id":"","op":"subscribe"}', 2)
    feed.on_frame(b'{"topic":"orderbook.50.DOGEUSDT","type":"delta","data":{}}', 3)
    assert feed.stats.parse_errors == {"subscribe_rejected": 1, "DataError": 1}


def _recording(path: Path, frames: list[bytes]) -> Path:
    # The dump in tradebot's recorder framing: header, the subscribe sent, the instrument list
    # (doc-shaped, above) as a REST response, then each frame at its `ts` (ms) in ns.
    t0 = orjson.loads(frames[0])["ts"] * 1_000_000
    (url,) = bybit.SPECS["bybit_linear"].instrument_urls(FeedConfig(venue="bybit_linear"))
    lines = [b"%d #tradebot venue=bybit_linear" % t0,
             b"%d < " % t0 + bybit.subscribe_requests(["orderbook.500.XRPUSDT"])[0].encode(),
             b"%d > %s " % (t0, url.encode()) + INSTRUMENTS_INFO]
    lines += [b"%d %s" % (orjson.loads(f)["ts"] * 1_000_000, f) for f in frames]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("damage", ["none", "delete", "duplicate", "reorder"])
def test_replay_of_the_dump_reports_continuity_and_any_damage(tmp_path: Path,
                                                              damage: str) -> None:
    frames = dump()
    if damage == "delete":
        del frames[30]
    elif damage == "duplicate":
        frames.insert(31, frames[30])
    elif damage == "reorder":
        frames[30], frames[31] = frames[31], frames[30]
    rec = inspect(_recording(tmp_path / "xrp.rec", frames))
    assert rec.venue == "bybit_linear" and [i.venue_symbol for i in rec.instruments] == ["XRPUSDT"]
    clock = SimClock()
    feed = bybit.BybitFeed("bybit_linear", rec.instruments, Bus(), clock)
    asyncio.run(ReplayDriver({"bybit_linear": feed}, clock, [rec]).run(progress=False))
    book = feed.books[XRP.id]
    assert feed.stats.parse_errors == {}
    if damage == "none":
        assert book.valid and book.gaps == 0 and book.last_seq == 20254869 + 49
    else:
        assert not book.valid and book.gaps == 1
