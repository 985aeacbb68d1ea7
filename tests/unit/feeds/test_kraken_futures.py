"""Kraken Futures: the recorded 2021 session (`seq` consecutive, 0 gaps), instruments from REST,
damage to the stream detected, resync by resubscribe, and fuzzed parsers."""

from __future__ import annotations

import contextlib
import functools
import json
import re
from decimal import Decimal
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import data_file
from tests.unit.feeds.test_replay import replay_files, replay_lines
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.domain import InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookInvalidated, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds import kraken_futures as kf
from tradebot.feeds.base import Feed
from tradebot.feeds.replay import read_entries, read_rest_lines
from tradebot.feeds.sync import BookState, BookSync

NAME = "KRAKEN_FUTURES"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def instruments() -> dict[str, kf.Instrument]:
    body = next(read_rest_lines(data_file(f"cryptofeed/{NAME}.0"))).payload
    return {i.venue_symbol: i for i in kf.parse_instruments(body)}


def test_instruments_map_perpetuals_to_normalized_symbols_and_keep_dated_ids() -> None:
    insts = instruments()
    btc = insts["PI_XBTUSD"]
    assert btc.id == InstrumentId("BTC-USD-PERP", "kraken_futures")
    assert (btc.kind, btc.base, btc.quote) == (MarketKind.INVERSE_PERP, "BTC", "USD")
    assert (btc.tick_size, btc.lot_size, btc.contract_size) == (Decimal("0.5"), 1, 1)
    assert insts["PI_XRPUSD"].price_decimals == 4
    dated = insts["FI_XBTUSD_210924"]
    assert dated.id.symbol == "FI_XBTUSD_210924" and dated.kind is MarketKind.INVERSE_PERP
    # 5 perpetuals and 12 dated futures; the 10 spot indices are not instruments.
    assert len(insts) == 17
    assert not any(s.startswith(("IN_", "RR_")) for s in insts)


def test_linear_perpetuals_and_bad_product_ids() -> None:
    assert kf.normalize("PF_XBTUSD") == ("BTC-USD-PERP", MarketKind.LINEAR_PERP)
    assert kf.normalize("pi_ethusd") == ("ETH-USD-PERP", MarketKind.INVERSE_PERP)
    for bad in ("in_xbtusd", "XBTUSD", "pi_", "pi_xbt_usd"):
        with pytest.raises(DataError):
            kf.normalize(bad)
    with pytest.raises(DataError):
        kf.parse_instruments(b'{"result":"error","error":"apiLimitExceeded"}')


def test_recorded_session_bridges_every_seq_with_no_gap() -> None:
    feed = replay_files([data_file(f"cryptofeed/{NAME}.ws.1.0")])
    books = feed.books.values()
    assert len(feed.books) == 10 and all(b.valid for b in books)
    assert feed.stats.parse_errors == {}
    assert sum(b.gaps for b in books) == 0 and sum(b.stale_dropped for b in books) == 0
    # Every one of the 7014 `book` messages continued its product's chain by exactly 1.
    applied = sum(b.last_seq for b in books) - sum(first_seq().values())
    assert applied == 7014


@functools.cache
def first_seq() -> dict[str, int]:
    seqs = {}
    for entry in read_entries(data_file(f"cryptofeed/{NAME}.ws.1.0")):
        if entry.kind == "frame" and entry.payload.startswith(b'{"feed":"book_snapshot"'):
            msg = json.loads(entry.payload)
            seqs[msg["product_id"]] = msg["seq"]
    return seqs


def test_recorded_trades_are_published_with_the_taker_side() -> None:
    bus = Bus()
    insts = list(instruments().values())
    feed = kf.KrakenFuturesFeed("kraken_futures", insts, bus, SimClock())
    got: list[Trade] = []
    bus.subscribe(Trade, got.append)
    for entry in read_entries(data_file(f"cryptofeed/{NAME}.ws.1.0")):
        if entry.kind == "frame":
            feed.on_frame(entry.payload, entry.ts)
    assert feed.stats.parse_errors == {}
    assert len(got) == 3  # trade_snapshot history is not republished
    assert got[0] == Trade(instrument=InstrumentId("LTC-USD-PERP", "kraken_futures"),
                           price=119.44, size=320.0, aggressor=Side.BUY,
                           trade_id="e2429e31-8b9d-4195-900e-fd42be2dec89",
                           ts_event=1_626_994_929_946_000_000, ts_init=got[0].ts_init)


# --- damage to the recorded stream ---------------------------------------------------------

PRODUCT = re.compile(rb'"product_id":"([A-Z_0-9]+)"')


def lines_and_deltas() -> tuple[list[bytes], list[int]]:
    lines = data_file(f"cryptofeed/{NAME}.ws.1.0").read_bytes().splitlines(keepends=True)
    deltas = [i for i, line in enumerate(lines) if b': {"feed":"book",' in line]
    return lines, deltas


def product(line: bytes) -> bytes:
    m = PRODUCT.search(line)
    assert m is not None
    return m.group(1)


def book_of(feed: Feed, line: bytes) -> BookSync:
    return feed.books[instruments()[product(line).decode()].id]


def levels(feed: Feed) -> dict[str, tuple]:
    return {str(i): (b.book.levels(1, 5000), b.book.levels(-1, 5000))
            for i, b in feed.books.items()}


def test_the_clean_recording_replays_through_written_lines(tmp_path: Path) -> None:
    lines, _ = lines_and_deltas()
    feed = replay_lines(lines, tmp_path, NAME)
    assert feed.books_valid and sum(b.gaps for b in feed.books.values()) == 0


@pytest.mark.parametrize("pick", [0, 1, 1500, 4000, 7013])
def test_a_deleted_book_message_is_a_gap(tmp_path: Path, pick: int) -> None:
    lines, deltas = lines_and_deltas()
    k = deltas[pick]
    later = [i for i in deltas if i > k and product(lines[i]) == product(lines[k])]
    feed = replay_lines([*lines[:k], *lines[k + 1:]], tmp_path, NAME)
    book = book_of(feed, lines[k])
    if later:
        assert book.gaps == 1 and book.state is BookState.RESYNCING
    else:  # the product's last message: nothing after it can tell
        assert book.gaps == 0
    assert sum(b.gaps for b in feed.books.values()) == book.gaps


@pytest.mark.parametrize("pick", [0, 3000, 7013])
def test_a_duplicated_book_message_is_counted_stale_and_changes_nothing(tmp_path: Path,
                                                                         pick: int) -> None:
    lines, deltas = lines_and_deltas()
    k = deltas[pick]
    feed = replay_lines([*lines[:k + 1], lines[k], *lines[k + 1:]], tmp_path, NAME)
    clean = replay_lines(lines, tmp_path, NAME)
    assert book_of(feed, lines[k]).stale_dropped == 1
    assert feed.books_valid and levels(feed) == levels(clean)


@pytest.mark.parametrize("pick", [3, 2500, 6000])
def test_two_book_messages_of_a_product_swapped_are_a_gap(tmp_path: Path, pick: int) -> None:
    lines, deltas = lines_and_deltas()
    k = deltas[pick]
    j = next(i for i in deltas if i > k and product(lines[i]) == product(lines[k]))
    swapped = [*lines[:k], lines[j], *lines[k + 1:j], lines[k], *lines[j + 1:]]
    feed = replay_lines(swapped, tmp_path, NAME)
    book = book_of(feed, lines[k])
    assert book.gaps == 1 and not book.valid


def test_a_gap_resyncs_by_resubscribing_and_the_next_snapshot_heals_the_book() -> None:
    bus = Bus()
    inst = instruments()["PI_ETHUSD"]
    feed = kf.KrakenFuturesFeed("kraken_futures", [inst], bus, SimClock())
    requests: list[str] = []
    feed.snapshot_needed = lambda _iid, reason: requests.append(reason)
    invalid: list[BookInvalidated] = []
    bus.subscribe(BookInvalidated, invalid.append)
    snapshot = (b'{"feed":"book_snapshot","product_id":"PI_ETHUSD","timestamp":1626994925378,'
                b'"seq":100,"tickSize":null,"bids":[{"price":2000.0,"qty":5.0}],'
                b'"asks":[{"price":2000.05,"qty":7.0}]}')
    feed.on_frame(snapshot, 1)
    book = feed.books[inst.id]
    assert book.valid and book.book.levels(-1, 1) == [(Decimal("2000.05"), Decimal(7))]
    feed.on_frame(b'{"feed":"book","product_id":"PI_ETHUSD","side":"buy","seq":102,'
                  b'"price":2000.5,"qty":1.0,"timestamp":1626994927744}', 2)
    assert book.state is BookState.RESYNCING and requests == ["gap"]
    assert [e.reason for e in invalid] == ["gap"]
    sub = [json.loads(m) for m in feed.resync_messages(inst, "gap")]
    assert sub == [{"event": "unsubscribe", "feed": "book", "product_ids": ["PI_ETHUSD"]},
                   {"event": "subscribe", "feed": "book", "product_ids": ["PI_ETHUSD"]}]
    feed.on_frame(snapshot.replace(b'"seq":100', b'"seq":205'), 3)
    assert book.valid and book.last_seq == 205


# Built from the documented `ticker` fields (docs.kraken.com futures-websocket/ticker), not
# recorded: the 2021 capture subscribed ticker_lite only. Values are illustrative.
TICKER = (b'{"time":1627462526224,"feed":"ticker","product_id":"PI_XBTUSD","bid":39780.5,'
          b'"ask":39800.5,"bid_size":5000.0,"ask_size":2500.0,"volume":1168580.0,"dtm":0,'
          b'"leverage":"50x","index":39511.15,"premium":0.7,"last":39804.0,"change":5.8,'
          b'"funding_rate":2.19e-8,"funding_rate_prediction":2.2e-8,"suspended":false,'
          b'"tag":"perpetual","pair":"XBT:USD","openInterest":32093438.0,"markPrice":39790.5,'
          b'"maturityTime":0,"relative_funding_rate":0.000874516826041667,'
          b'"relative_funding_rate_prediction":0.0008743,"next_funding_rate_time":1627473600000}')


def test_ticker_gives_quote_mark_price_and_the_relative_funding_rate() -> None:
    bus = Bus()
    inst = instruments()["PI_XBTUSD"]
    feed = kf.KrakenFuturesFeed("kraken_futures", [inst], bus, SimClock())
    got: list[object] = []
    for kind in (Quote, MarkPrice, FundingRate):
        bus.subscribe(kind, got.append)
    feed.on_frame(TICKER, 9)
    ts = 1_627_462_526_224_000_000
    assert got == [
        Quote(instrument=inst.id, bid_price=39780.5, bid_size=5000.0, ask_price=39800.5,
              ask_size=2500.0, ts_event=ts, ts_init=9),
        MarkPrice(instrument=inst.id, mark_price=39790.5, index_price=39511.15, ts_event=ts,
                  ts_init=9),
        FundingRate(instrument=inst.id, rate=0.000874516826041667,
                    next_funding_ns=1_627_473_600_000_000_000, ts_event=ts, ts_init=9),
    ]
    # A dated future's ticker has no funding fields.
    dated = orjson.loads(TICKER)
    for key in ("relative_funding_rate", "next_funding_rate_time", "funding_rate"):
        del dated[key]
    assert kf.parse_ticker(dated, inst, 9)[2] is None
    with pytest.raises(DataError):
        kf.parse_ticker({**dated, "bid": float("nan")}, inst, 9)


def test_a_price_off_the_tick_grid_is_rejected_not_rounded() -> None:
    inst = instruments()["PI_XBTUSD"]  # tick 0.5
    feed = kf.KrakenFuturesFeed("kraken_futures", [inst], Bus(), SimClock())
    feed.on_frame(b'{"feed":"book","product_id":"PI_XBTUSD","side":"buy","seq":1,'
                  b'"price":32000.25,"qty":1.0,"timestamp":1}', 1)
    assert feed.stats.parse_errors == {"DataError": 1}
    with pytest.raises(DataError):
        kf.to_units(float("nan"), 1, "price")
    with pytest.raises(DataError):
        kf.to_units(-1.0, 1, "qty")


def test_subscriptions_heartbeat_and_control_frames() -> None:
    inst = instruments()["PI_XBTUSD"]
    feed = kf.KrakenFuturesFeed("kraken_futures", [inst], Bus(), SimClock())
    assert feed.connection_url(FeedConfig(venue="kraken_futures"), [inst]) == \
        "wss://futures.kraken.com/ws/v1"
    subs = [json.loads(m) for m in feed.connection_messages([inst])]
    assert subs[0] == {"event": "subscribe", "feed": "book", "product_ids": ["PI_XBTUSD"]}
    assert [s["feed"] for s in subs] == ["book", "trade", "ticker", "heartbeat"]
    assert "product_ids" not in subs[-1]
    assert feed.spec.instrument_urls(FeedConfig(venue="kraken_futures")) == \
        ["https://futures.kraken.com/derivatives/api/v3/instruments"]
    for frame in (b'{"event":"info","version":1}', b'{"feed":"heartbeat","time":1534262350627}',
                  b'{"event":"subscribed","feed":"book","product_ids":["PI_XBTUSD"]}'):
        feed.on_frame(frame, 1)
    assert feed.stats.parse_errors == {}
    feed.on_frame(b'{"event":"error","message":"Invalid product id"}', 2)
    feed.on_frame(b'{"feed":"mystery","product_id":"PI_XBTUSD"}', 3)
    assert feed.stats.parse_errors == {"DataError": 2}
    with pytest.raises(DataError):
        feed.snapshot_url(FeedConfig(venue="kraken_futures"), inst)


# --- fuzzing ------------------------------------------------------------------------------


@functools.cache
def recorded_frames() -> tuple[bytes, ...]:
    frames = [e.payload for e in read_entries(data_file(f"cryptofeed/{NAME}.ws.1.0"))
              if e.kind == "frame"]
    return tuple(frames[:40] + frames[40::25] + [TICKER])


def synced_feed() -> Feed:
    feed = kf.KrakenFuturesFeed("kraken_futures", instruments().values(), Bus(), SimClock())
    for frame in recorded_frames()[:40]:  # snapshots in, so deltas reach the book
        feed.on_frame(frame, 1)
    return feed


def mutate(frame: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["cut", "splice", "retype"]))
    i = data.draw(st.integers(0, max(0, len(frame) - 1)))
    if kind == "cut":
        return frame[:i]
    if kind == "splice":
        return frame[:i] + data.draw(st.binary(max_size=12)) + frame[i:]
    with contextlib.suppress(orjson.JSONDecodeError):
        msg = orjson.loads(frame)
        if isinstance(msg, dict) and msg:
            key = data.draw(st.sampled_from(sorted(msg)))
            msg[key] = data.draw(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1),
                                           st.floats(), st.text(max_size=5), st.lists(st.none())))
            return orjson.dumps(msg)
    return frame


@FUZZ
@given(st.data())
def test_mutated_recorded_frames_never_raise_out_of_the_feed(data: st.DataObject) -> None:
    feed = synced_feed()
    frame = mutate(data.draw(st.sampled_from(recorded_frames())), data)
    before = feed.stats.messages
    feed.on_frame(frame, 2)
    assert feed.stats.messages == before + 1


@FUZZ
@given(st.data())
def test_mutated_instrument_lists_raise_only_data_error(data: st.DataObject) -> None:
    body = next(read_rest_lines(data_file(f"cryptofeed/{NAME}.0"))).payload
    doc = orjson.loads(body)
    rows = doc["instruments"]
    row = dict(rows[data.draw(st.integers(0, len(rows) - 1))])
    key = data.draw(st.sampled_from(sorted(row)))
    row[key] = data.draw(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(),
                                   st.text(max_size=6), st.booleans(), st.lists(st.none())))
    mutated = orjson.dumps({**doc, "instruments": [row]})
    with contextlib.suppress(DataError):
        kf.parse_instruments(mutated)
    with contextlib.suppress(DataError):
        kf.parse_instruments(data.draw(st.binary(max_size=64)))


@FUZZ
@given(price=st.floats(allow_nan=True, allow_infinity=True), decimals=st.integers(0, 12))
def test_to_units_is_exact_or_raises_data_error(price: float, decimals: int) -> None:
    try:
        units = kf.to_units(price, decimals, "price")
    except DataError:
        return
    assert Decimal(units).scaleb(-decimals) == Decimal(repr(price))
    assert np.int64(units) == units
