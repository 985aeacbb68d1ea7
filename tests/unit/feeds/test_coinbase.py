from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.conftest import data_file, metric
from tests.unit.feeds.test_kucoin import ReferenceBook, book_matches, rest_body, ws_frames
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import InstrumentId, Side
from tradebot.errors import DataError
from tradebot.events import BookInvalidated, BookUpdated, Quote, Trade
from tradebot.feeds import coinbase
from tradebot.feeds.replay import ReplayDriver, inspect

# Doc-derived Advanced Trade fixtures (see tests/fixtures/coinbase/README.md).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "coinbase"
ADVANCED = {i.venue_symbol: i for i in coinbase.parse_instruments(
    (FIXTURES / "products.json").read_bytes(), "coinbase")}
BTC, ETH = ADVANCED["BTC-USD"], ADVANCED["ETH-USD"]

RECORDED_PRODUCTS = ["SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC",
                     "DASH-BTC", "NU-GBP", "CRV-EUR", "SKL-GBP"]


def session(name: str = "session.jsonl") -> list[bytes]:
    return (FIXTURES / name).read_bytes().splitlines()


def advanced_feed(bus: Bus | None = None) -> coinbase.CoinbaseFeed:
    return coinbase.CoinbaseFeed("coinbase", [BTC, ETH], bus or Bus(), SimClock())


def play(feed: coinbase.CoinbaseFeed, frames: list[bytes], start: int = 0) -> None:
    for n, frame in enumerate(frames):
        feed.on_frame(frame, start + n)


def test_products_map_to_normalised_spot_instruments() -> None:
    assert set(ADVANCED) == {"BTC-USD", "ETH-USD"}  # the FUTURE is skipped
    assert BTC.id == InstrumentId("BTC-USD", "coinbase")
    assert (BTC.tick_size, BTC.lot_size, BTC.min_notional) == (
        Decimal("0.01"), Decimal("0.00000001"), Decimal(1))
    exchange = {i.venue_symbol: i for i in coinbase.parse_instruments(
        rest_body(data_file("cryptofeed/COINBASE.0")), "coinbase_exchange")}
    dash = exchange["DASH-BTC"]
    assert dash.id == InstrumentId("DASH-BTC", "coinbase_exchange")
    assert dash.lot_size == Decimal("0.001") and dash.size_decimals == 8  # book sizes: 8


def test_advanced_session_builds_books_trades_and_quotes() -> None:
    bus = Bus()
    got: list[object] = []
    bus.subscribe(Trade, got.append)
    bus.subscribe(Quote, got.append)
    feed = advanced_feed(bus)
    play(feed, session())
    btc, eth = feed.books[BTC.id], feed.books[ETH.id]
    assert btc.valid and eth.valid and feed.stats.parse_errors == {}
    assert btc.book.levels(1, 5) == [(Decimal("21921.73"), Decimal("0.1")),
                                     (Decimal("21921.3"), Decimal("0.02")),
                                     (Decimal("21920.5"), Decimal("1.25"))]
    assert btc.book.levels(-1, 5) == [(Decimal("21921.9"), Decimal("0.25")),
                                      (Decimal("21922.01"), Decimal("0.1")),
                                      (Decimal("21925"), Decimal(3))]
    assert eth.book.levels(1, 1) == [(Decimal("1545.11"), Decimal("3.9"))]
    assert eth.book.levels(-1, 2)[1] == (Decimal("1545.2"), Decimal("1.5"))
    trade, quote = got
    assert trade == Trade(instrument=BTC.id, price=21921.74, size=0.5, aggressor=Side.BUY,
                          trade_id="480436217", ts_event=1675974771304811000, ts_init=5)
    assert isinstance(quote, Quote) and quote.bid_price == 21921.73
    assert quote.ts_event == 1675974771401126513  # the envelope time, to the ns
    assert bus.counts()["BookUpdated"] == 6  # 2 snapshots + 4 book events


@pytest.mark.parametrize("damage", ["delete", "duplicate", "reorder"])
def test_a_skipped_or_repeated_sequence_num_invalidates_every_book(damage: str) -> None:
    frames = session()
    if damage == "delete":
        del frames[3]  # a heartbeat: the lost message need not be a book's own
    elif damage == "duplicate":
        frames.insert(5, frames[4])
    else:
        frames[5], frames[6] = frames[6], frames[5]
    bus = Bus()
    invalidated: list[str] = []
    bus.subscribe(BookInvalidated, lambda e: invalidated.append(str(e.instrument)))
    feed = advanced_feed(bus)
    resyncs: list[tuple[str, str]] = []
    feed.snapshot_needed = lambda iid, reason: resyncs.append((iid.symbol, reason))
    before = metric("tradebot_book_gaps_total", venue="coinbase", symbol="ETH-USD")
    play(feed, frames)
    assert feed.sequence_gaps >= 1
    assert sorted(invalidated) == ["BTC-USD.coinbase", "ETH-USD.coinbase"]
    assert not feed.books[BTC.id].valid and not feed.books[ETH.id].valid
    assert feed.books[BTC.id].gaps == 1 and feed.books[ETH.id].gaps == 1
    assert metric("tradebot_book_gaps_total", venue="coinbase", symbol="ETH-USD") - before == 1
    assert sorted(resyncs) == [("BTC-USD", "gap"), ("ETH-USD", "gap")]


def test_resubscribing_resends_the_book_and_it_is_valid_again() -> None:
    feed = advanced_feed()
    frames = session()
    play(feed, frames[:4] + frames[5:])  # sequence 4 lost
    assert not feed.books[BTC.id].valid
    messages = feed.resync_messages(BTC, "gap")
    assert [orjson.loads(m) for m in messages or []] == [
        {"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}]
    play(feed, session("resnapshot.jsonl"), 100)  # sequence 12, 13: 10-11 never arrived
    btc = feed.books[BTC.id]
    # The new snapshot is authoritative; a gap between 9 and 12 only hits books that were
    # valid (none), and the update after the snapshot applies.
    assert btc.valid and btc.last_seq == 13
    ref = ReferenceBook()
    ref.load([["21919", "2"], ["21919.01", "0.3"]], [["21919.5", "1.5"]])
    assert book_matches(btc.book, ref)
    assert not feed.books[ETH.id].valid


def test_a_new_connection_starts_a_new_sequence() -> None:
    feed = advanced_feed()
    play(feed, session())
    feed.reset_books("connect")
    play(feed, session())  # sequence_num starts again at 0 on the new connection
    assert feed.sequence_gaps == 0
    assert feed.books[BTC.id].valid and feed.books[ETH.id].valid


def test_subscribe_messages_cover_book_trades_ticker_and_heartbeats() -> None:
    feed = advanced_feed()
    channels = [orjson.loads(m)["channel"]
                for m in feed.connection_messages(list(feed.instruments.values()))]
    assert channels == ["level2", "market_trades", "ticker", "heartbeats"]
    exchange = coinbase.subscribe_messages("coinbase_exchange", ["BTC-USD"])
    assert orjson.loads(exchange[0])["channels"] == ["level2_batch", "matches", "ticker",
                                                     "heartbeat"]


def _exchange_session() -> tuple[coinbase.CoinbaseFeed, Bus, list[bytes]]:
    insts = [i for i in coinbase.parse_instruments(
        rest_body(data_file("cryptofeed/COINBASE.0")), "coinbase_exchange")
        if i.venue_symbol in RECORDED_PRODUCTS]
    bus = Bus()
    clock = SimClock()
    feed = coinbase.CoinbaseFeed("coinbase_exchange", insts, bus, clock)
    frames = []
    for ts, frame in ws_frames(data_file("cryptofeed/COINBASE.ws.28.0")):
        clock.advance_to(ts)
        feed.on_frame(frame, ts)
        frames.append(frame)
    return feed, bus, frames


def test_recorded_exchange_session_builds_every_book_and_matches_a_plain_model() -> None:
    feed, bus, frames = _exchange_session()
    assert len(feed.books) == 10 and all(b.valid and b.gaps == 0 for b in feed.books.values())
    assert feed.stats.parse_errors == {}
    counts = bus.counts()
    assert counts["Trade"] == 107  # 97 match + 10 last_match
    assert counts["BookUpdated"] == 10 + 9719
    refs: dict[str, ReferenceBook] = {}
    for frame in frames:
        doc = orjson.loads(frame)
        if doc["type"] == "snapshot":
            refs.setdefault(doc["product_id"], ReferenceBook()).load(doc["bids"], doc["asks"])
        elif doc["type"] == "l2update" and doc["product_id"] in refs:
            refs[doc["product_id"]].apply(
                [(1 if s == "buy" else -1, p, q) for s, p, q in doc["changes"]])
    for book in feed.books.values():
        assert book_matches(book.book, refs[book.instrument.venue_symbol])


def test_exchange_match_side_is_the_makers() -> None:
    feed, bus, frames = _exchange_session()
    got: list[Trade] = []
    bus.subscribe(Trade, got.append)
    match = next(f for f in frames if b'"type":"match"' in f)
    feed.on_frame(match, 1)
    assert got[0].aggressor is Side.BUY  # maker side "sell": the taker bought
    assert got[0].trade_id == "280232" and got[0].ts_event == 1618677817089723000


def test_times_and_units_are_exact_and_malformed_ones_rejected() -> None:
    assert coinbase.iso_ns("2023-02-09T20:32:50.714964855Z") == 1675974770714964855
    assert coinbase.iso_ns("1970-01-01T00:00:00Z") == 0
    assert coinbase.to_units("21921.3", 2) == 2192130
    assert coinbase.to_units("3.00000000", 0) == 3
    for bad in ("-1", "1e5", "", "1.2.3", "0.001"):
        with pytest.raises(DataError):
            coinbase.to_units(bad, 2)
    with pytest.raises(DataError):
        coinbase.iso_ns("2023-02-09T20:32:50+01:00")


def test_venue_errors_and_unknown_products_are_counted_not_fatal() -> None:
    feed = advanced_feed()
    feed.on_frame(b'{"type":"error","message":"failure to subscribe"}', 1)
    feed.on_frame(b'{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50Z",'
                  b'"sequence_num":0,"events":[{"type":"update","product_id":"DOGE-USD",'
                  b'"updates":[]}]}', 2)
    assert feed.stats.parse_errors == {"venue_error": 1, "DataError": 1}
    assert not any(b.valid for b in feed.books.values())
    assert BookUpdated.__name__ not in feed.bus.counts()


def test_replay_driver_plays_the_exchange_session_under_either_venue_name() -> None:
    for venue in ("coinbase_exchange", "coinbase"):
        rec = inspect(data_file("cryptofeed/COINBASE.ws.28.0"), venue)
        assert sorted(i.venue_symbol for i in rec.instruments) == sorted(RECORDED_PRODUCTS)
        clock = SimClock()
        feed = coinbase.CoinbaseFeed(venue, rec.instruments, Bus(), clock)
        asyncio.run(ReplayDriver({venue: feed}, clock, [rec]).run(progress=False))
        assert all(b.valid and b.gaps == 0 for b in feed.books.values())
        assert feed.stats.parse_errors == {}
