from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.conftest import data_file, metric
from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import Instrument, InstrumentId
from tradebot.events import Quote, Trade
from tradebot.feeds import kucoin
from tradebot.feeds.replay import ReplayDriver, inspect

SUBSCRIBED = ["EQZ-BTC", "ANKR-BTC", "SNX-BTC", "FET-BTC", "BCHSV-USDT", "NRG-BTC", "CAPP-BTC",
              "DAPPT-BTC", "COV-BTC", "LTX-USDT"]
# LTX-USDT was subscribed but neither traded nor got a snapshot in the 30 s session.
WITH_BOOKS = [s for s in SUBSCRIBED if s != "LTX-USDT"]

# --- recorded cryptofeed sessions (shared with test_coinbase) ----------------------------

_WS = re.compile(rb"^(\d+\.\d+): (.*)$")
_HTTP = re.compile(rb"^(\S+) -> (\d+\.\d+): (.*)$")


def ws_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (receive ns, frame) of a cryptofeed `NAME.ws.N.0` file (client frames skipped)."""
    for line in path.read_bytes().split(b"\n"):
        match = _WS.match(line)
        if match:
            yield int(Decimal(match.group(1).decode()) * 10**9), match.group(2)


def http_bodies(path: Path) -> Iterator[tuple[int, str, bytes]]:
    """Yield (receive ns, url, body) of a cryptofeed `NAME.http.0.0` file."""
    for line in path.read_bytes().split(b"\n"):
        match = _HTTP.match(line)
        if match:
            ts = int(Decimal(match.group(2).decode()) * 10**9)
            yield ts, match.group(1).decode(), match.group(3)


def rest_body(path: Path) -> bytes:
    """Return the body of the first REST response in a cryptofeed `NAME.0` file."""
    first = path.read_bytes().split(b"\n")[0]
    return first.split(b": ", 1)[1]


class ReferenceBook:
    """A plain dict book over exact Decimals: the independent model the kernels must match."""

    def __init__(self) -> None:
        self.sides: dict[int, dict[Decimal, Decimal]] = {1: {}, -1: {}}

    def load(self, bids: list, asks: list) -> None:
        self.sides = {1: {}, -1: {}}
        self.apply([(1, p, s) for p, s, *_ in bids] + [(-1, p, s) for p, s, *_ in asks])

    def apply(self, changes: list[tuple[int, str, str]]) -> None:
        for side, price, size in changes:
            if Decimal(size) == 0:
                self.sides[side].pop(Decimal(price), None)
            else:
                self.sides[side][Decimal(price)] = Decimal(size)

    def top(self, side: int, depth: int) -> list[tuple[Decimal, Decimal]]:
        prices = sorted(self.sides[side], reverse=side == 1)[:depth]
        return [(p, self.sides[side][p]) for p in prices]


def book_matches(book: OrderBook, ref: ReferenceBook, depth: int = 500) -> bool:
    # Books keep their best 1000 levels per side (core/book.py); compare well inside that.
    return all(book.levels(side, depth) == ref.top(side, depth) for side in (1, -1))


# --- fixtures ----------------------------------------------------------------------------


def instruments() -> list[Instrument]:
    insts = kucoin.parse_instruments(rest_body(data_file("cryptofeed/KUCOIN.0")))
    wanted = [i for i in insts if i.venue_symbol in SUBSCRIBED]
    # The recorded BSV-USDT snapshot holds one dust level with an 11-decimal size
    # ("0.00019434546" at 0.121): this pair's book needs 11 size decimals.
    return [dataclasses.replace(i, size_precision=11) if i.venue_symbol == "BCHSV-USDT" else i
            for i in wanted]


def session() -> list[tuple[int, int, object]]:
    """The recorded session as it happened: ws frames and REST snapshots by receive time."""
    items: list[tuple[int, int, object]] = [
        (ts, 0, frame) for ts, frame in ws_frames(data_file("cryptofeed/KUCOIN.ws.1.0"))]
    items += [(ts, 1, (url, body))
              for ts, url, body in http_bodies(data_file("cryptofeed/KUCOIN.http.0.0"))]
    items.sort(key=lambda item: (item[0], item[1]))
    return items


def play(items: list[tuple[int, int, object]],
         insts: list[Instrument] | None = None) -> tuple[kucoin.KucoinFeed, Bus]:
    bus = Bus()
    clock = SimClock()
    feed = kucoin.KucoinFeed("kucoin", insts or instruments(), bus, clock)
    for ts, kind, payload in items:
        clock.advance_to(ts)
        if kind == 0:
            assert isinstance(payload, bytes)
            feed.on_frame(payload, ts)
        else:
            url, body = payload  # type: ignore[misc]
            inst = feed.instrument_of(url.rpartition("=")[2])
            feed.on_snapshot(feed.parse_snapshot(body, inst, ts))
    return feed, bus


def reference_books(items: list[tuple[int, int, object]]) -> dict[str, ReferenceBook]:
    """Rebuild every book from the documented rules alone, with plain Python."""
    refs: dict[str, ReferenceBook] = {}
    seqs: dict[str, int] = {}
    for _, kind, payload in items:
        if kind == 1:
            url, body = payload  # type: ignore[misc]
            data = orjson.loads(body)["data"]
            symbol = url.rpartition("=")[2]
            refs.setdefault(symbol, ReferenceBook()).load(data["bids"], data["asks"])
            seqs[symbol] = int(data["sequence"])
            continue
        assert isinstance(payload, bytes)
        doc = orjson.loads(payload)
        if doc.get("subject") != "trade.l2update":
            continue
        data = doc["data"]
        symbol = data["symbol"]
        if symbol not in refs:
            continue
        changes = [(1 if side == "bids" else -1, p, s, int(q))
                   for side in ("bids", "asks") for p, s, q in data["changes"][side]]
        for side, price, size, seq in sorted(changes, key=lambda c: c[3]):
            if seq > seqs[symbol] and Decimal(price) != 0:
                refs[symbol].apply([(side, price, size)])
        seqs[symbol] = max(seqs[symbol], data["sequenceEnd"])
    return refs


# --- tests -------------------------------------------------------------------------------


def test_instruments_map_kucoin_symbols_to_normalised_ones() -> None:
    insts = {i.venue_symbol: i for i in
             kucoin.parse_instruments(rest_body(data_file("cryptofeed/KUCOIN.0")))}
    assert len(insts) > 500
    bsv = insts["BCHSV-USDT"]
    assert bsv.id == InstrumentId("BSV-USDT", "kucoin")  # KuCoin's BCHSV trades BSV
    assert (bsv.tick_size, bsv.lot_size, bsv.min_notional) == (
        Decimal("0.001"), Decimal("0.00000001"), Decimal("0.05"))
    assert insts["CAPP-BTC"].price_decimals == 10 and insts["CAPP-BTC"].size_decimals == 8


def test_recorded_session_bridges_every_book_with_zero_gaps() -> None:
    items = session()
    feed, bus = play(items)
    books = {b.instrument.venue_symbol: b for b in feed.books.values()}
    assert [s for s in WITH_BOOKS if not books[s].valid] == []
    assert sum(b.gaps for b in books.values()) == 0
    assert feed.stats.parse_errors == {}
    # Every snapshot was taken after a few diffs were buffered (the real resync situation).
    assert all(books[s].stale_dropped >= 1 for s in WITH_BOOKS)
    assert not books["LTX-USDT"].valid and books["LTX-USDT"].snapshots == 0
    counts = bus.counts()
    assert counts["Trade"] == 18 and "BookInvalidated" not in counts
    refs = reference_books(items)
    for symbol in WITH_BOOKS:
        assert book_matches(books[symbol].book, refs[symbol]), symbol


def _l2_indexes(items: list[tuple[int, int, object]], symbol: bytes) -> list[int]:
    return [n for n, (_, kind, payload) in enumerate(items) if kind == 0
            and isinstance(payload, bytes) and b"l2update" in payload
            and b'"symbol":"' + symbol + b'"' in payload]


@pytest.mark.parametrize("damage", ["delete", "duplicate", "reorder"])
def test_one_damaged_l2update_after_the_bridge_is_a_gap_for_that_book_only(damage: str) -> None:
    items = session()
    snap_at = next(n for n, (_, kind, p) in enumerate(items)
                   if kind == 1 and "BCHSV-USDT" in p[0])  # type: ignore[index]
    later = [n for n in _l2_indexes(items, b"BCHSV-USDT") if n > snap_at]
    a, b = later[30], later[31]
    (ts_a, _, frame_a), (ts_b, _, frame_b) = items[a], items[b]
    if damage == "delete":
        del items[a]
    elif damage == "duplicate":
        items.insert(a + 1, (ts_a, 0, frame_a))
    else:  # swap two consecutive messages of the book, keeping the receive times
        items[a], items[b] = (ts_a, 0, frame_b), (ts_b, 0, frame_a)
    before = metric("tradebot_book_gaps_total", venue="kucoin", symbol="BSV-USDT")
    feed, bus = play(items)
    books = {b.instrument.venue_symbol: b for b in feed.books.values()}
    assert books["BCHSV-USDT"].gaps == 1 and not books["BCHSV-USDT"].valid
    assert metric("tradebot_book_gaps_total", venue="kucoin", symbol="BSV-USDT") - before == 1
    assert all(books[s].valid and books[s].gaps == 0 for s in WITH_BOOKS if s != "BCHSV-USDT")
    assert bus.counts()["BookInvalidated"] == 1


def test_documented_example_ignores_changes_at_or_below_the_snapshot_sequence() -> None:
    # KuCoin's calibration example: snapshot sequence 16, so ["3988.59","3","16"] is ignored.
    inst = instruments()[0]
    inst = dataclasses.replace(inst, venue_symbol="BTC-USDT", tick_size=Decimal("0.01"),
                               lot_size=Decimal("0.00000001"))
    feed = kucoin.KucoinFeed("kucoin", [inst], Bus(), SimClock())

    def frame(start: int, end: int, asks: list[list[str]], bids: list[list[str]]) -> bytes:
        return orjson.dumps({"type": "message", "topic": "/market/level2:BTC-USDT",
                             "subject": "trade.l2update",
                             "data": {"sequenceStart": start, "sequenceEnd": end,
                                      "symbol": "BTC-USDT", "changes": {"asks": asks,
                                                                        "bids": bids}}})

    feed.on_frame(frame(16, 18, [["3988.59", "3", "16"], ["3988.61", "0", "18"]],
                        [["3988.50", "44", "17"]]), 1)
    feed.on_frame(frame(19, 19, [["3988.62", "8", "19"]], []), 2)
    snapshot = (b'{"code":"200000","data":{"sequence":"16","time":1,'
                b'"bids":[["3988.48","1"]],"asks":[["3988.59","1"],["3988.61","2"]]}}')
    feed.on_snapshot(feed.parse_snapshot(snapshot, inst, 3))
    book = feed.books[inst.id]
    assert book.valid and book.last_seq == 19 and book.gaps == 0
    assert book.book.levels(-1, 5) == [(Decimal("3988.59"), Decimal(1)),
                                       (Decimal("3988.62"), Decimal(8))]
    assert book.book.levels(1, 5) == [(Decimal("3988.50"), Decimal(44)),
                                      (Decimal("3988.48"), Decimal(1))]
    # Straddling the book's sequence after the bridge: only the newer change applies.
    feed.on_frame(frame(20, 21, [["3988.70", "1", "21"]], [["3988.49", "5", "20"]]), 4)
    assert book.last_seq == 21 and book.gaps == 0
    assert book.book.levels(1, 5)[1] == (Decimal("3988.49"), Decimal(5))


def test_split_by_change_tiles_the_message_range() -> None:
    levels = np.array([[1, 10, 1], [-1, 11, 2], [1, 9, 3]], np.int64)
    parts = list(kucoin.split_by_change(levels, [105, 103, 107], 102, 108))
    assert [(first, last) for _, first, last in parts] == [(102, 103), (104, 105), (106, 108)]
    assert [p[0].tolist() for p in parts] == [[[-1, 11, 2]], [[1, 10, 1]], [[1, 9, 3]]]
    empty = list(kucoin.split_by_change(levels[:0], [], 5, 6))
    assert [(f, last) for _, f, last in empty] == [(5, 6)]


def test_rule_drops_stale_bridges_straddles_and_flags_any_break() -> None:
    rule = kucoin.KucoinRule()
    assert rule.bridge(100, 90, 100, -1) == "drop"
    assert rule.bridge(100, 95, 105, -1) == "apply"
    assert rule.bridge(100, 102, 105, -1) == "gap"
    assert rule.follow(100, 101, 101, -1) == "apply"
    assert rule.follow(100, 100, 100, -1) == "gap"  # repeated
    assert rule.follow(100, 102, 102, -1) == "gap"  # lost


def test_matches_and_tickers_are_parsed_from_recorded_frames() -> None:
    frames = [f for _, f in ws_frames(data_file("cryptofeed/KUCOIN.ws.1.0"))]
    match = next(f for f in frames if b"trade.l3match" in f)
    ticker = next(f for f in frames if b"trade.ticker" in f and b"BCHSV-USDT" in f)
    bus = Bus()
    feed = kucoin.KucoinFeed("kucoin", instruments(), bus, SimClock())
    got: list[object] = []
    bus.subscribe(Trade, got.append)
    bus.subscribe(Quote, got.append)
    feed.on_frame(match, 7)
    feed.on_frame(ticker, 8)
    trade, quote = got
    assert isinstance(trade, Trade) and isinstance(quote, Quote)
    assert trade.instrument == InstrumentId("DAPPT-BTC", "kucoin")
    assert trade.price == 0.0000001117 and trade.size == 81.8814
    assert trade.aggressor.name == "BUY" and trade.ts_event == 1619378327739050725
    assert quote.instrument == InstrumentId("BSV-USDT", "kucoin")
    assert (quote.bid_price, quote.ask_price) == (242.654, 242.951)
    assert quote.ts_event == 1619378326330 * 1_000_000


def test_bullet_gives_the_url_and_the_ping_interval() -> None:
    body = (b'{"code":"200000","data":{"token":"2neAiuYvAU61ZD","instanceServers":[{'
            b'"endpoint":"wss://ws-api-spot.kucoin.com/","encrypt":true,"protocol":"websocket",'
            b'"pingInterval":18000,"pingTimeout":10000}]}}')
    bullet = kucoin.parse_bullet(body)
    assert bullet.ping_interval_s == 18.0 and bullet.ping_timeout_s == 10.0
    assert (kucoin.connect_url(bullet, "7")
            == "wss://ws-api-spot.kucoin.com/?token=2neAiuYvAU61ZD&connectId=7")
    feed = kucoin.KucoinFeed("kucoin", instruments(), Bus(), SimClock())
    feed.bullet = bullet
    message, interval = feed.keepalive()  # type: ignore[misc]
    assert interval == 18.0 and orjson.loads(message)["type"] == "ping"
    with pytest.raises(kucoin.DataError):
        kucoin.parse_bullet(b'{"code":"400100","msg":"bad"}')


def test_subscriptions_batch_symbols_into_topics() -> None:
    insts = instruments()
    feed = kucoin.KucoinFeed("kucoin", insts, Bus(), SimClock())
    topics = [orjson.loads(m)["topic"] for m in feed.connection_messages(insts)]
    assert topics[0].startswith("/market/level2:") and len(topics) == 3
    assert set(topics[0].partition(":")[2].split(",")) == set(SUBSCRIBED)
    assert kucoin.topics([insts[0]] * 150)[1].count(",") == 49  # 100 + 50 per channel


def test_control_messages_pass_and_venue_errors_are_counted() -> None:
    feed = kucoin.KucoinFeed("kucoin", instruments(), Bus(), SimClock())
    for frame in (b'{"id":"hQvf8jkno","type":"welcome"}', b'{"id":"1","type":"ack"}',
                  b'{"id":"1","type":"pong"}'):
        feed.on_frame(frame, 1)
    assert feed.stats.parse_errors == {}
    before = metric("tradebot_feed_parse_errors_total", venue="kucoin", kind="venue_error")
    feed.on_frame(b'{"id":"2","type":"error","code":404,"data":"topic not found"}', 2)
    assert feed.stats.parse_errors == {"venue_error": 1}
    assert metric("tradebot_feed_parse_errors_total", venue="kucoin",
                  kind="venue_error") - before == 1


def test_a_negative_size_is_a_rejected_frame_not_a_crash() -> None:
    insts = instruments()
    feed = kucoin.KucoinFeed("kucoin", insts, Bus(), SimClock())
    bad = (b'{"data":{"sequenceStart":5,"symbol":"SNX-BTC","changes":{"asks":'
           b'[["0.00028717","-1","5"]],"bids":[]},"sequenceEnd":5},'
           b'"subject":"trade.l2update","topic":"/market/level2:SNX-BTC","type":"message"}')
    feed.on_frame(bad, 1)
    assert feed.stats.parse_errors == {"DataError": 1}


def test_replay_driver_plays_the_cryptofeed_session_with_its_rest_snapshots() -> None:
    rec = inspect(data_file("cryptofeed/KUCOIN.ws.1.0"))
    assert rec.venue == "kucoin" and sorted(i.venue_symbol for i in rec.instruments) == sorted(
        SUBSCRIBED)
    overrides = {i.venue_symbol: i for i in instruments()}  # BSV-USDT: 11 size decimals
    clock = SimClock()
    feed = kucoin.KucoinFeed("kucoin", [overrides[i.venue_symbol] for i in rec.instruments],
                             Bus(), clock)
    asyncio.run(ReplayDriver({"kucoin": feed}, clock, [rec]).run(progress=False))
    books = {b.instrument.venue_symbol: b for b in feed.books.values()}
    assert [s for s in WITH_BOOKS if not books[s].valid] == []
    assert sum(b.gaps for b in books.values()) == 0 and feed.stats.parse_errors == {}
