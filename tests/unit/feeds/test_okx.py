"""OKX v5: the recorded session (290/290 checksums), seqId chains, checksum 0 as absent, REST
bootstrap when no snapshot arrives, swaps' funding and mark price, damage detection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest

from tests.conftest import data_file
from tests.unit.feeds.test_replay import replay_files, replay_lines
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.domain import InstrumentId, MarketKind, Side
from tradebot.events import FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds import okx
from tradebot.feeds.replay import read_rest_lines
from tradebot.feeds.sync import BookState


def instruments() -> dict[str, okx.Instrument]:
    out = {}
    for entry in read_rest_lines(data_file("cryptofeed/OKX.0")):
        if "OPTION" not in entry.url:
            out.update((i.venue_symbol, i) for i in okx.parse_instruments(entry.payload))
    return out


def test_instruments_map_to_normalized_symbols() -> None:
    insts = instruments()
    swap = insts["BTC-USDT-SWAP"]
    assert swap.id == InstrumentId("BTC-USDT-PERP", "okx")
    assert (swap.kind, swap.contract_size, swap.tick_size) == (
        MarketKind.LINEAR_PERP, okx.Decimal("0.01"), okx.Decimal("0.1"))
    inverse = insts["UNI-USD-SWAP"]
    assert inverse.kind is MarketKind.INVERSE_PERP and inverse.price_decimals == 3
    assert insts["BTC-USDT"].size_decimals == 8
    assert okx.venue_symbol("BTC-USDT-PERP") == "BTC-USDT-SWAP"


def test_recorded_session_reproduces_every_checksum() -> None:
    feed = replay_files([data_file("cryptofeed/OKX.ws.1.0")])
    assert sum(b.checksums_ok for b in feed.books.values()) == 290
    assert sum(b.checksums_failed for b in feed.books.values()) == 0
    assert all(b.valid for b in feed.books.values())
    assert feed.stats.parse_errors == {}


def make_feed(symbol: str = "BTC-USDT-SWAP") -> tuple[okx.OkxFeed, Bus, list[str]]:
    bus = Bus()
    feed = okx.OkxFeed("okx", [instruments()[symbol]], bus, SimClock())
    requests: list[str] = []
    feed.snapshot_needed = lambda _i, reason: requests.append(reason)
    return feed, bus, requests


def book_frame(action: str, seq: int, prev: int, bids: list[list[str]],
               asks: list[list[str]], checksum: int = 0,
               inst: str = "BTC-USDT-SWAP") -> bytes:
    data = {"asks": [[p, s, "0", "1"] for p, s in asks],
            "bids": [[p, s, "0", "1"] for p, s in bids], "ts": "1700000000000",
            "checksum": checksum, "seqId": seq, "prevSeqId": prev}
    return orjson.dumps({"arg": {"channel": "books", "instId": inst}, "action": action,
                         "data": [data]})


def test_seq_chain_follows_documented_example_including_reset_and_heartbeat() -> None:
    feed, _, requests = make_feed()
    book = feed.books[InstrumentId("BTC-USDT-PERP", "okx")]
    feed.on_frame(book_frame("snapshot", 10, -1, [["100", "1"]], [["101", "1"]]), 1)
    for seq, prev in ((15, 10), (15, 15), (3, 15), (5, 3)):  # update, heartbeat, reset, update
        feed.on_frame(book_frame("update", seq, prev, [], []), 2)
    assert book.valid and book.gaps == 0 and requests == []
    feed.on_frame(book_frame("update", 9, 7, [], []), 3)  # prevSeqId 7 != 5: a lost message
    assert book.state is BookState.RESYNCING and book.gaps == 1 and requests == ["gap"]
    # With ids the feed bridges from REST, not by resubscribing.
    assert feed.resync_messages(book.instrument, "gap") is None


def test_checksum_zero_is_absent_and_nonzero_is_verified() -> None:
    feed, _, requests = make_feed()
    book = feed.books[InstrumentId("BTC-USDT-PERP", "okx")]
    feed.on_frame(book_frame("snapshot", 1, -1, [["3366.1", "7"], ["3366", "6"]],
                             [["3366.8", "9"], ["3368", "8"]], checksum=-1881014294), 1)
    assert book.valid and book.checksums_ok == 1
    feed.on_frame(book_frame("update", 2, 1, [], [], checksum=0), 2)
    assert book.valid and book.checksums_ok == 1 and book.checksums_failed == 0
    feed.on_frame(book_frame("update", 3, 2, [["3366", "0"]], [], checksum=12345), 3)
    assert not book.valid and book.checksums_failed == 1 and requests == ["checksum"]


def test_updates_without_a_snapshot_bootstrap_from_rest() -> None:
    feed, _, requests = make_feed()
    book = feed.books[InstrumentId("BTC-USDT-PERP", "okx")]
    feed.on_frame(book_frame("update", 20, 18, [["100", "2"]], []), 1)
    feed.on_frame(book_frame("update", 22, 20, [["99", "1"]], []), 2)
    feed.on_frame(book_frame("update", 25, 22, [], [["102", "4"]]), 3)
    assert requests == ["no_snapshot"] and not book.valid
    body = (b'{"code":"0","msg":"","data":[{"asks":[["101","1","0","1"]],"bids":[["100","1",'
            b'"0","1"]],"ts":"1700000000000","seqId":22}]}')
    snapshot = feed.parse_snapshot(body, book.instrument, 4)
    assert snapshot.sequence == 22
    feed.on_snapshot(snapshot)
    # 20 and 22 are in the snapshot (dropped); 25 bridges with prevSeqId 22.
    assert book.valid and book.stale_dropped == 2 and book.last_seq == 25
    assert [(str(p), str(s)) for p, s in book.book.levels(-1, 5)] == [("101.0", "1"),
                                                                     ("102.0", "4")]


def test_rest_snapshot_without_seq_id_cannot_bridge() -> None:
    feed, _, _ = make_feed()
    inst = instruments()["BTC-USDT-SWAP"]
    with pytest.raises(okx.DataError):
        feed.parse_snapshot(b'{"code":"0","data":[{"asks":[],"bids":[],"ts":"1"}]}', inst, 1)
    with pytest.raises(okx.DataError):
        feed.parse_snapshot(b'{"code":"51001","msg":"Instrument ID does not exist"}', inst, 1)
    assert feed.snapshot_url(FeedConfig(venue="okx"), inst) == \
        "https://www.okx.com/api/v5/market/books?instId=BTC-USDT-SWAP&sz=400"


def test_swap_channels_funding_mark_trades_tickers() -> None:
    feed, bus, _ = make_feed()
    got: list[object] = []
    for kind in (Trade, Quote, FundingRate, MarkPrice):
        bus.subscribe(kind, got.append)
    arg = b'{"arg":{"channel":"%s","instId":"BTC-USDT-SWAP"},"data":[%s]}'
    feed.on_frame(arg % (b"trades", b'{"instId":"BTC-USDT-SWAP","tradeId":"7","px":"30218.8",'
                                     b'"sz":"1","side":"sell","ts":"1652459199958"}'), 1)
    feed.on_frame(arg % (b"tickers", b'{"instId":"BTC-USDT-SWAP","last":"5","askPx":"5.142",'
                                      b'"askSz":"25","bidPx":"5.134","bidSz":"96",'
                                      b'"ts":"1652459223143"}'), 2)
    feed.on_frame(arg % (b"funding-rate", b'{"instId":"BTC-USDT-SWAP","instType":"SWAP",'
                                           b'"fundingRate":"0.0001","fundingTime":'
                                           b'"1703088000000","ts":"1703070685309"}'), 3)
    feed.on_frame(arg % (b"mark-price", b'{"instId":"BTC-USDT-SWAP","instType":"SWAP",'
                                         b'"markPx":"42310.6","ts":"1703070685309"}'), 4)
    feed.on_frame(b"pong", 5)
    feed.on_frame(b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT-SWAP"}}', 6)
    iid = InstrumentId("BTC-USDT-PERP", "okx")
    assert got[0] == Trade(instrument=iid, price=30218.8, size=1.0, aggressor=Side.SELL,
                           trade_id="7", ts_event=1652459199958_000_000, ts_init=1)
    assert isinstance(got[1], Quote) and got[1].bid_price == 5.134
    assert got[2] == FundingRate(instrument=iid, rate=0.0001,
                                 next_funding_ns=1703088000000_000_000,
                                 ts_event=1703070685309_000_000, ts_init=3)
    assert got[3] == MarkPrice(instrument=iid, mark_price=42310.6, index_price=None,
                               ts_event=1703070685309_000_000, ts_init=4)
    assert feed.stats.parse_errors == {}
    feed.on_frame(b'{"event":"error","code":"60012","msg":"Invalid request"}', 7)
    assert feed.stats.parse_errors == {"DataError": 1}


def test_subscriptions_keepalive_and_connection_split() -> None:
    insts = list(instruments().values())[:60]
    feed = okx.OkxFeed("okx", insts, Bus(), SimClock())
    assert feed.keepalive() == ("ping", 20.0)
    shards = feed.split_subscriptions()
    assert [len(s) for s in shards] == [25, 25, 10]
    msg = json.loads(feed.connection_messages(shards[2])[0])
    assert msg["op"] == "subscribe"
    swap = instruments()["BTC-USDT-SWAP"]
    args = json.loads(okx.subscribe([swap]))["args"]
    assert [a["channel"] for a in args] == ["books", "trades", "tickers", "funding-rate",
                                            "mark-price"]


# --- damage to the recorded stream ---------------------------------------------------------

INST = re.compile(rb'"channel":"books","instId":"([^"]+)"')


def okx_lines() -> tuple[list[bytes], list[int]]:
    lines = data_file("cryptofeed/OKX.ws.1.0").read_bytes().splitlines(keepends=True)
    updates = [i for i, line in enumerate(lines)
               if b'"action":"update"' in line and not line.startswith(b"wss")]
    return lines, updates


def damaged(feed: okx.OkxFeed) -> bool:
    return any(b.checksums_failed or not b.valid for b in feed.books.values())


@pytest.mark.parametrize("pick", [0, 50, 150, 250])
def test_a_deleted_duplicated_or_swapped_update_is_detected(tmp_path: Path, pick: int) -> None:
    lines, updates = okx_lines()
    k = updates[pick]
    inst = INST.search(lines[k])
    assert inst is not None
    j = next(i for i in updates if i > k and INST.search(lines[i]).group(1) == inst.group(1))
    assert damaged(replay_lines([*lines[:k], *lines[k + 1:]], tmp_path, "OKX"))
    assert damaged(replay_lines([*lines[:k + 1], lines[k], *lines[k + 1:]], tmp_path, "OKX"))
    swapped = [*lines[:k], lines[j], *lines[k + 1:j], lines[k], *lines[j + 1:]]
    assert damaged(replay_lines(swapped, tmp_path, "OKX"))
    assert not damaged(replay_lines(lines, tmp_path, "OKX"))


def test_a_gap_in_seq_ids_is_detected_without_checksums() -> None:
    feed, _, requests = make_feed()
    book = feed.books[InstrumentId("BTC-USDT-PERP", "okx")]
    feed.on_frame(book_frame("snapshot", 1, -1, [["100", "1"]], [["101", "1"]]), 1)
    frames = [book_frame("update", s, s - 1, [["100", str(s)]], []) for s in range(2, 6)]
    for frame in [frames[0], frames[0], *frames[1:]]:  # a duplicate
        feed.on_frame(frame, 2)
    assert book.gaps == 1 and requests == ["gap"]
