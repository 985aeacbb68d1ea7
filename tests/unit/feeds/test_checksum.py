"""The book state machine's checksum hook, and the CRC kernels on the documented vectors."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import data_file, metric
from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.core import book as kbook
from tradebot.core import checksum as kcheck
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.events import BookInvalidated, BookSnapshot, BookUpdated
from tradebot.feeds.sync import BookState, BookSync, Verdict

INST = Instrument(id=InstrumentId("ETH-BTC", "test"), venue_symbol="ETHBTC", kind=MarketKind.SPOT,
                  base="ETH", quote="BTC", tick_size=Decimal("0.00001"),
                  lot_size=Decimal("0.00000001"), min_notional=Decimal(0))


class AnyOrder:
    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        return "apply"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        return "apply"


class TopTenFixed:
    """Kraken's form, at the instrument's own decimals."""

    def checksum(self, book: OrderBook) -> int:
        return kcheck.crc_fixed_top(kcheck.CRC_TABLE, book.keys, book.sizes, book.counts, 10, 0, 0)


def units(inst: Instrument, price: str, size: str) -> tuple[int, int]:
    return (int(Decimal(price).scaleb(inst.price_decimals)),
            int(Decimal(size).scaleb(inst.size_decimals)))


def book_of(inst: Instrument, bids: list[list[str]], asks: list[list[str]]) -> OrderBook:
    book = OrderBook(inst)
    rows = [(1, *units(inst, p, s)) for p, s in bids] + [(-1, *units(inst, p, s)) for p, s in asks]
    levels = np.array(rows, np.int64)
    book.apply(levels, len(rows))
    return book


def vectors() -> dict[str, dict]:
    path = data_file("checksums/checksum_vectors.json")
    return {v["id"]: v for v in json.loads(path.read_text())}


def test_kraken_v1_documented_vector() -> None:
    v = vectors()["kraken_ws_v1_book_checksum_doc_example"]
    book = book_of(INST, v["bids"], v["asks"])
    assert TopTenFixed().checksum(book) == v["expected"] == 974947235


def test_kraken_v2_documented_vector_at_the_instrument_precision() -> None:
    v = vectors()["kraken_ws_v2_book_checksum_doc_example"]
    inst = Instrument(id=InstrumentId("BTC-USD", "kraken"), venue_symbol="BTC/USD",
                      kind=MarketKind.SPOT, base="BTC", quote="USD", tick_size=Decimal("0.1"),
                      lot_size=Decimal("0.00000001"), min_notional=Decimal(0))
    book = book_of(inst, v["bids"], v["asks"])
    assert TopTenFixed().checksum(book) == v["expected"] == 3310070434


def test_okx_documented_vectors_signed() -> None:
    inst = Instrument(id=InstrumentId("BTC-USD-PERP", "okx"), venue_symbol="BTC-USD-SWAP",
                      kind=MarketKind.INVERSE_PERP, base="BTC", quote="USD",
                      tick_size=Decimal("0.1"), lot_size=Decimal(1), min_notional=Decimal(0))
    for key in ("okx_v3_checksum_example_aligned", "okx_v3_checksum_example_unaligned",
                "okx_v5_checksum_example_aligned"):
        v = vectors()[key]
        book = book_of(inst, v["bids"], v["asks"])
        got = kcheck.crc_canonical_interleaved(kcheck.CRC_TABLE, book.keys, book.sizes,
                                               book.counts, 25, 1, 0)
        assert got == v["computed"]
        assert got == (v["expected"] if v["expected"] is not None else v["computed"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**9), st.integers(1, 10**9)), min_size=1,
                max_size=30, unique_by=lambda t: t[0]),
       st.integers(0, 6), st.integers(0, 4))
def test_canonical_crc_matches_a_string_reference(levels: list[tuple[int, int]], pd: int,
                                                  sd: int) -> None:
    keys = np.zeros((2, 64), np.int64)
    sizes = np.zeros((2, 64), np.int64)
    counts = np.zeros(2, np.int64)
    top = np.zeros(4, np.int64)
    half = len(levels) // 2
    rows = [(1, p, s) for p, s in levels[:half]] + [(-1, p + 10**10, s) for p, s in levels[half:]]
    kbook.book_apply(keys, sizes, counts, np.array(rows, np.int64), len(rows), top, 10_000)

    def text(u: int, d: int) -> str:
        s = format(Decimal(u).scaleb(-d), "f")
        return s.rstrip("0").rstrip(".") if "." in s else s

    bids = sorted(((p, s) for side, p, s in rows if side == 1), reverse=True)[:25]
    asks = sorted((p, s) for side, p, s in rows if side == -1)[:25]
    parts = []
    for i in range(25):
        if i < len(bids):
            parts += [text(bids[i][0], pd), text(bids[i][1], sd)]
        if i < len(asks):
            parts += [text(asks[i][0], pd), text(asks[i][1], sd)]
    crc = zlib.crc32(":".join(parts).encode())
    expected = crc - (1 << 32) if crc >= 1 << 31 else crc
    assert kcheck.crc_canonical_interleaved(kcheck.CRC_TABLE, keys, sizes, counts, 25, pd,
                                            sd) == expected


def test_fixed_crc_shifts_units_to_the_wire_decimals() -> None:
    # "0.05005" at 5 decimals held at 8 decimals: shift -3 gives the same digits.
    v = vectors()["kraken_ws_v1_book_checksum_doc_example"]
    fine = Instrument(id=InstrumentId("ETH-BTC", "t"), venue_symbol="X", kind=MarketKind.SPOT,
                      base="E", quote="B", tick_size=Decimal("0.00000001"),
                      lot_size=Decimal("0.00000001"), min_notional=Decimal(0))
    book = book_of(fine, v["bids"], v["asks"])
    assert kcheck.crc_fixed_top(kcheck.CRC_TABLE, book.keys, book.sizes, book.counts, 10, -3,
                                0) == 974947235


def test_truncate_keeps_the_best_levels() -> None:
    book = book_of(INST, [["0.0100", "1"], ["0.0200", "1"], ["0.0300", "1"]],
                   [["0.0400", "1"], ["0.0500", "1"]])
    book.truncate(2)
    assert [p for p, _ in book.levels(1, 5)] == [Decimal("0.03"), Decimal("0.02")]
    assert [p for p, _ in book.levels(-1, 5)] == [Decimal("0.04"), Decimal("0.05")]


def synced_book(bus: Bus, requests: list[str]) -> BookSync:
    sync = BookSync(INST, AnyOrder(), bus, request_snapshot=lambda _i, r: requests.append(r))
    sync.checker = TopTenFixed()
    sync.buffering = False
    v = vectors()["kraken_ws_v1_book_checksum_doc_example"]
    bids = np.array([units(INST, p, s) for p, s in v["bids"]], np.int64)
    asks = np.array([units(INST, p, s) for p, s in v["asks"]], np.int64)
    sync.on_snapshot(BookSnapshot(instrument=INST.id, bids=bids, asks=asks, sequence=-1,
                                  ts_event=1, ts_init=1), checksum=974947235)
    return sync


def test_a_checksum_mismatch_invalidates_the_book_and_requests_a_resync() -> None:
    bus = Bus()
    invalidated: list[BookInvalidated] = []
    bus.subscribe(BookInvalidated, invalidated.append)
    requests: list[str] = []
    sync = synced_book(bus, requests)
    assert sync.valid and sync.checksums_ok == 1
    before = metric("tradebot_book_resyncs_total", venue="test", symbol="ETH-BTC",
                    reason="checksum")
    levels = np.array([[1, 4999, 100]], np.int64)  # a level the venue did not send
    sync.on_delta(levels, 1, -1, -1, -1, 2, 2, checksum=974947235)
    assert sync.state is BookState.RESYNCING
    assert sync.checksums_failed == 1
    assert requests == ["checksum"]
    assert [e.reason for e in invalidated] == ["checksum"]
    assert metric("tradebot_book_resyncs_total", venue="test", symbol="ETH-BTC",
                  reason="checksum") == before + 1
    # Deltas while invalid are dropped (the next snapshot supersedes them), never applied.
    sync.on_delta(levels, 1, -1, -1, -1, 3, 3, checksum=1)
    assert sync.discarded == 1 and sync.checksums_failed == 1


def test_a_new_snapshot_is_authoritative_at_any_time() -> None:
    bus = Bus()
    requests: list[str] = []
    sync = synced_book(bus, requests)
    updates: list[BookUpdated] = []
    bus.subscribe(BookUpdated, updates.append)
    snap = BookSnapshot(instrument=INST.id, bids=np.array([[100, 5]], np.int64),
                        asks=np.array([[200, 5]], np.int64), sequence=-1, ts_event=5, ts_init=5)
    sync.on_snapshot(snap)
    assert sync.valid and sync.book.levels(1, 10) == [(Decimal("0.001"), Decimal("5E-8"))]
    assert updates[-1].best_ask == 0.002


def test_a_wrong_snapshot_checksum_leaves_the_book_invalid() -> None:
    bus = Bus()
    requests: list[str] = []
    sync = BookSync(INST, AnyOrder(), bus, request_snapshot=lambda _i, r: requests.append(r))
    sync.checker = TopTenFixed()
    snap = BookSnapshot(instrument=INST.id, bids=np.array([[100, 5]], np.int64),
                        asks=np.array([[200, 5]], np.int64), sequence=-1, ts_event=5, ts_init=5)
    sync.on_snapshot(snap, checksum=123)
    assert not sync.valid and sync.checksums_failed == 1 and requests == ["checksum"]


def test_max_depth_truncates_after_every_update() -> None:
    bus = Bus()
    sync = BookSync(INST, AnyOrder(), bus, request_snapshot=lambda _i, _r: None)
    sync.max_depth = 2
    snap = BookSnapshot(instrument=INST.id, bids=np.array([[100, 5], [90, 5]], np.int64),
                        asks=np.array([[200, 5]], np.int64), sequence=-1, ts_event=5, ts_init=5)
    sync.on_snapshot(snap)
    sync.on_delta(np.array([[1, 110, 1]], np.int64), 1, -1, -1, -1, 6, 6)
    assert [int(p.scaleb(5)) for p, _ in sync.book.levels(1, 10)] == [110, 100]


def test_a_silent_synced_book_goes_stale() -> None:
    bus = Bus()
    requests: list[str] = []
    sync = synced_book(bus, requests)
    assert not sync.check_stale(1 + 5, 10)
    assert sync.check_stale(1 + 11, 10)
    assert sync.state is BookState.RESYNCING and requests == ["stale"]
