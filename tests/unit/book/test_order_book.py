"""The book's home: named top-of-book fields, the read-only view, and `valid` following the sync."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import numpy as np

from tradebot.book import TOP_ASK, TOP_ASK_SIZE, TOP_BID, TOP_BID_SIZE, BookView, OrderBook
from tradebot.bus import Bus
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.events import BookSnapshot, BookUpdated
from tradebot.feeds.sync import BookState, BookSync, Verdict

INST = Instrument(id=InstrumentId("ETH-BTC", "test"), venue_symbol="ETHBTC", kind=MarketKind.SPOT,
                  base="ETH", quote="BTC", tick_size=Decimal("0.00001"),
                  lot_size=Decimal("0.001"), min_notional=Decimal(0))
PACKAGE = Path(__file__).resolve().parents[3] / "tradebot"


class Chain:
    """Deltas chain by id: a delta whose `prev` is not the last applied id is a gap."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        return "apply" if first <= snapshot_seq + 1 <= last else "drop"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        return "apply" if prev == last_applied else "gap"


def book(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> OrderBook:
    b = OrderBook(INST)
    rows = [(1, p, s) for p, s in bids] + [(-1, p, s) for p, s in asks]
    b.apply(np.array(rows, np.int64).reshape(-1, 3), len(rows))
    return b


def test_named_top_fields_read_the_top_slots() -> None:
    b = book([(100, 5), (99, 7)], [(103, 2), (104, 9)])
    assert (b.bid_units, b.bid_size_units, b.ask_units, b.ask_size_units) == (100, 5, 103, 2)
    assert [int(b.top[i]) for i in (TOP_BID, TOP_BID_SIZE, TOP_ASK, TOP_ASK_SIZE)] == \
        [100, 5, 103, 2]
    assert all(type(v) is int for v in (b.bid_units, b.ask_size_units))
    assert b.mid_price() == Decimal("0.001015")
    assert (b.best_bid, b.best_ask) == (0.001, 0.00103)


def test_an_empty_side_reads_zero_and_has_no_mid() -> None:
    b = book([(100, 5)], [])
    assert (b.ask_units, b.ask_size_units) == (0, 0)
    assert b.mid_price() is None


def test_an_order_book_is_a_book_view() -> None:
    view: BookView = book([(100, 5)], [(101, 1)])
    members = {name for name in vars(BookView) if not name.startswith("_")}
    assert "valid" in members and members <= set(dir(view))
    assert view.walk(1, 1).tolist() == [[101, 1]]
    assert view.price_scale == 10.0**INST.price_decimals
    assert view.size_scale == 10.0**INST.size_decimals


def test_valid_follows_the_sync_state() -> None:
    bus = Bus()
    requests: list[str] = []
    updates: list[BookUpdated] = []
    bus.subscribe(BookUpdated, updates.append)
    sync = BookSync(INST, Chain(), bus, request_snapshot=lambda _i, r: requests.append(r))
    assert sync.state is BookState.BUFFERING and not sync.book.valid
    sync.on_snapshot(BookSnapshot(instrument=INST.id, bids=np.array([[100, 5]], np.int64),
                                  asks=np.array([[103, 2]], np.int64), sequence=10, ts_event=1,
                                  ts_init=1))
    assert sync.valid and sync.book.valid
    top = updates[-1]
    assert (top.best_bid, top.best_bid_size, top.best_ask, top.best_ask_size) == \
        (0.001, 0.005, 0.00103, 0.002)
    sync.on_delta(np.array([[1, 101, 1]], np.int64), 1, 11, 11, 10, 2, 2)
    assert sync.book.valid and sync.book.bid_units == 101
    sync.on_delta(np.array([[1, 102, 1]], np.int64), 1, 13, 13, 12, 3, 3)  # a gap
    assert sync.state is BookState.RESYNCING and not sync.book.valid
    assert requests == ["gap"]
    sync.on_snapshot(BookSnapshot(instrument=INST.id, bids=np.array([[100, 5]], np.int64),
                                  asks=np.array([[103, 2]], np.int64), sequence=20, ts_event=4,
                                  ts_init=4))
    assert sync.book.valid
    sync.reset("connect", 5, 5)
    assert not sync.valid and not sync.book.valid


def _member(node: ast.stmt) -> str | None:
    if isinstance(node, ast.FunctionDef):
        return node.name
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def test_one_book_protocol_in_the_tree() -> None:
    # Execution and features read `tradebot.book.BookView`; none declares its own book protocol.
    declared = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(base, "id", None) == "Protocol" for base in node.bases):
                fields = {_member(n) for n in node.body}
                if {"keys", "sizes", "counts"} & fields or "book" in fields:
                    declared.append(f"{path.relative_to(PACKAGE)}:{node.name}")
    assert declared == ["book/view.py:BookView"]
