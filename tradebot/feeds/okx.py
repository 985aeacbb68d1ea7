"""OKX v5 public market data: books, trades, tickers; funding rate and mark price of swaps.

Rules (../shared/EXCHANGES.md §4):
- `seqId`/`prevSeqId` per instrument: each update's `prevSeqId` is the previous `seqId` (a
  no-change heartbeat repeats it; after maintenance `seqId` may go down: never require it to
  grow). The 2022 recording predates them: without ids the checksum is the only guard.
- checksum: CRC32 (signed) of `bid:size:ask:size:...` over the best 25 levels, from the strings
  OKX sent; always 0 since 2026-06-23, so 0 means "absent", never a mismatch. OKX strings are
  shortest decimals (no trailing zeros: all levels of the recording), so they are rebuilt
  exactly from integer units; any other form fails the checksum loudly and resyncs.
- OKX is withdrawing the initial ws snapshot: when updates with ids arrive and no snapshot
  does, the book bootstraps from REST `/api/v5/market/books` (its `seqId` bridges: drop
  updates with `seqId` <= it, the first kept has `prevSeqId` <= it). A ws snapshot is still
  authoritative whenever it comes. Books without ids resync by unsubscribe/subscribe.
- keep-alive: the text `ping` (answered by `pong`) before 30 s of silence; fewer than 30 depth
  channels per connection.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal

import numpy as np
import orjson

from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.core import checksum as kcheck
from tradebot.core.jsonscan import MISSING, key_code, scan_object
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds.base import Feed, as_data_error
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------

VENUES = ("okx",)
WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
REST_URL = "https://www.okx.com"
INSTRUMENTS_PATH = "/api/v5/public/instruments"
INSTRUMENT_TYPES = ("SPOT", "SWAP", "FUTURES")
BOOKS_PATH = "/api/v5/market/books"
BOOK_CHANNEL = "books"
CHANNELS = (BOOK_CHANNEL, "trades", "tickers")
SWAP_CHANNELS = ("funding-rate", "mark-price")
CHECKSUM_DEPTH = 25
MAX_REST_DEPTH = 400
PING = "ping"
PING_INTERVAL_S = 20.0  # OKX drops a connection after 30 s without traffic
INSTRUMENTS_PER_CONNECTION = 25  # OKX: fewer than 30 depth channels per connection
# `books` repeats an unchanged book about every 60 s; twice that silence is a stale channel.
BOOK_STALE_AFTER_S = 120.0

# Fields of a book data object, in the order of _BOOK_KEYS.
_BOOK_KEYS = ("ts", "checksum", "seqId", "prevSeqId")
_BOOK_CODES = np.array([key_code(k) for k in _BOOK_KEYS], np.int64)
_BIDS, _ASKS = key_code("bids"), key_code("asks")
_MS = 1_000_000


class SeqIdRule:
    """The `prevSeqId` chain; -1 ids (streams before 2023) accept every update."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first update after a snapshot whose `seqId` is `snapshot_seq`."""
        if last == -1 or snapshot_seq == -1:
            return "apply"
        if last <= snapshot_seq:
            return "drop"
        return "apply" if prev <= snapshot_seq else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge an update after an applied one: its `prevSeqId` must be the last `seqId`."""
        if last == -1:
            return "apply"
        return "apply" if prev == last_applied else "gap"


class OkxChecksum:
    """OKX's signed CRC32 of the best 25 levels, interleaved bid/ask."""

    def checksum(self, book: OrderBook) -> int:
        """Return the checksum OKX sends for `book`."""
        inst = book.instrument
        return int(kcheck.crc_canonical_interleaved(
            kcheck.CRC_TABLE, book.keys, book.sizes, book.counts, CHECKSUM_DEPTH,
            inst.price_decimals, inst.size_decimals))


# --- pure parsing ------------------------------------------------------------------------


def normalize(inst_id: str, inst_type: str) -> str:
    """Return the normalized symbol: `BTC-USDT`, `BTC-USDT-SWAP` -> `BTC-USDT-PERP`."""
    if inst_type == "SWAP":
        if not inst_id.endswith("-SWAP"):
            raise DataError(f"swap {inst_id!r} does not end in -SWAP")
        return inst_id[: -len("-SWAP")] + "-PERP"
    return inst_id


def venue_symbol(symbol: str) -> str:
    """Return OKX's instId of a normalized symbol (`BTC-USDT-PERP` -> `BTC-USDT-SWAP`)."""
    return symbol[: -len("-PERP")] + "-SWAP" if symbol.endswith("-PERP") else symbol


def _instrument(row: dict, venue: str) -> Instrument | None:
    inst_type = row["instType"]
    if inst_type not in INSTRUMENT_TYPES or row.get("state", "live") != "live":
        return None
    inst_id = row["instId"]
    if inst_type == "SPOT":
        base, quote, kind, contract = row["baseCcy"], row["quoteCcy"], MarketKind.SPOT, "1"
    else:
        base, _, quote = row["uly"].partition("-")
        kind = MarketKind.LINEAR_PERP if row["ctType"] == "linear" else MarketKind.INVERSE_PERP
        contract = row["ctVal"]
    return Instrument(
        id=InstrumentId(normalize(inst_id, inst_type), venue), venue_symbol=inst_id,
        kind=kind, base=base, quote=quote, tick_size=Decimal(row["tickSz"]),
        lot_size=Decimal(row["lotSz"]), min_notional=Decimal(0),
        contract_size=Decimal(contract),
    )


@as_data_error
def parse_instruments(body: bytes, venue: str = "okx") -> list[Instrument]:
    """Parse `/api/v5/public/instruments` (SPOT, SWAP, FUTURES; options are skipped).

    Dated futures keep their instId as symbol (`BTC-USD-220527`) and the kind of their
    settlement (linear or inverse), since the domain has no dated-future kind.
    """
    data = orjson.loads(body)
    if not isinstance(data, dict) or data.get("code") != "0":
        raise DataError(f"OKX instruments response is an error: {str(data)[:200]}")
    return [inst for row in data["data"] if (inst := _instrument(row, venue)) is not None]


def route(frame: bytes) -> tuple[bytes, bytes]:
    """Return (channel, instId) of a push frame `{"arg":{"channel":..,"instId":..},...}`."""
    c = frame.find(b'"channel":"')
    i = frame.find(b'"instId":"')
    if c < 0 or i < 0 or not frame.startswith(b'{"arg":'):
        raise DataError("push frame without arg.channel and arg.instId")
    c += 11
    i += 10
    return frame[c:frame.index(b'"', c)], frame[i:frame.index(b'"', i)]


def scan_book(frame: bytes, offset: int, instrument: Instrument, header: np.ndarray,
              levels: np.ndarray) -> int:
    """Scan the book data object at `offset` into `header` (ts, checksum, seqId, prevSeqId)."""
    header.fill(MISSING)
    n = scan_object(np.frombuffer(frame, np.uint8), offset, _BOOK_CODES, header, _BIDS, _ASKS,
                    instrument.price_decimals, instrument.size_decimals, levels)
    if n < 0:
        raise DataError(f"book data for {instrument.id} not scannable (code {n})")
    return n


def data_offset(frame: bytes) -> int:
    """Return the offset of the first object of a frame's `data` array."""
    pos = frame.find(b'"data":[')
    if pos < 0:
        raise DataError("frame has no data array")
    return frame.index(b"{", pos)


@as_data_error
def parse_snapshot(body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
    """Parse a REST `/api/v5/market/books` body; its `seqId` is required to bridge."""
    if not body.startswith(b'{"code":"0"'):
        raise DataError(f"OKX books response is an error: {body[:200]!r}")
    header = np.empty(len(_BOOK_KEYS), np.int64)
    levels = np.empty((body.count(b"[") + 1, 3), np.int64)
    n = scan_book(body, data_offset(body), instrument, header, levels)
    if header[2] == MISSING:
        raise DataError(f"OKX books response for {instrument.id} has no seqId to bridge with")
    return _snapshot(instrument, levels[:n], int(header[2]),
                     int(header[0]) * _MS if header[0] != MISSING else ts_init, ts_init)


def _snapshot(instrument: Instrument, levels: np.ndarray, seq: int, ts_event: int,
              ts_init: int) -> BookSnapshot:
    return BookSnapshot(
        instrument=instrument.id,
        bids=np.ascontiguousarray(levels[levels[:, 0] == 1, 1:]),
        asks=np.ascontiguousarray(levels[levels[:, 0] == -1, 1:]),
        sequence=seq, ts_event=ts_event, ts_init=ts_init,
    )


@as_data_error
def parse_trades(data: list, instrument: Instrument, ts_init: int) -> list[Trade]:
    """Parse `trades` data (`side` is the taker's)."""
    return [Trade(instrument=instrument.id, price=float(t["px"]), size=float(t["sz"]),
                  aggressor=Side.BUY if t["side"] == "buy" else Side.SELL,
                  trade_id=str(t["tradeId"]), ts_event=int(t["ts"]) * _MS, ts_init=ts_init)
            for t in data]


@as_data_error
def parse_ticker(entry: dict, instrument: Instrument, ts_init: int) -> Quote:
    """Parse one `tickers` data entry."""
    return Quote(instrument=instrument.id, bid_price=float(entry["bidPx"]),
                 bid_size=float(entry["bidSz"]), ask_price=float(entry["askPx"]),
                 ask_size=float(entry["askSz"]), ts_event=int(entry["ts"]) * _MS,
                 ts_init=ts_init)


@as_data_error
def parse_funding(entry: dict, instrument: Instrument, ts_init: int) -> FundingRate:
    """Parse one `funding-rate` data entry (`fundingTime`: when the current rate is charged)."""
    ts = entry.get("ts")
    return FundingRate(instrument=instrument.id, rate=float(entry["fundingRate"]),
                       next_funding_ns=int(entry["fundingTime"]) * _MS
                       if entry.get("fundingTime") else None,
                       ts_event=int(ts) * _MS if ts else ts_init, ts_init=ts_init)


@as_data_error
def parse_mark(entry: dict, instrument: Instrument, ts_init: int) -> MarkPrice:
    """Parse one `mark-price` data entry."""
    return MarkPrice(instrument=instrument.id, mark_price=float(entry["markPx"]),
                     index_price=None, ts_event=int(entry["ts"]) * _MS, ts_init=ts_init)


def subscribe(instruments: Sequence[Instrument], op: str = "subscribe",
              channels: Sequence[str] | None = None) -> str:
    """Return one (un)subscribe message for the channels of `instruments`."""
    args = []
    for inst in instruments:
        names = list(channels or CHANNELS)
        if channels is None and inst.id.symbol.endswith("-PERP"):
            names += SWAP_CHANNELS
        args += [{"channel": name, "instId": inst.venue_symbol} for name in names]
    return orjson.dumps({"op": op, "args": args}).decode()


def snapshot_url(rest_url: str, instrument: Instrument, limit: int) -> str:
    """Return the REST book URL, at most MAX_REST_DEPTH levels deep."""
    depth = min(limit, MAX_REST_DEPTH)
    return f"{rest_url or REST_URL}{BOOKS_PATH}?instId={instrument.venue_symbol}&sz={depth}"


SPECS = {
    venue: VenueSpec(
        venue=venue, ws_url=WS_URL, rest_url=REST_URL, channels=CHANNELS + SWAP_CHANNELS,
        sequence_rule=SeqIdRule,
        instrument_paths=tuple(f"{INSTRUMENTS_PATH}?instType={t}" for t in INSTRUMENT_TYPES),
        instrument_parser=parse_instruments,
        max_instruments_per_connection=INSTRUMENTS_PER_CONNECTION,
        keepalive=(PING, PING_INTERVAL_S), book_stale_after_s=BOOK_STALE_AFTER_S,
        snapshot_on_subscribe=True, snapshot_url=snapshot_url, snapshot_parser=parse_snapshot,
    )
    for venue in VENUES
}


# --- the feed ----------------------------------------------------------------------------


class OkxFeed(Feed):
    """OKX v5 public channels: books by seqId and checksum, trades, quotes, funding, mark."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._by_inst_id = {i.venue_symbol.encode(): i for i in self.instruments.values()}
        self._header = np.empty(len(_BOOK_KEYS), np.int64)
        self._levels = np.empty((20_000, 3), np.int64)
        self._with_ids: set[InstrumentId] = set()
        # Books with no snapshot since connecting: updates with ids bootstrap them from REST.
        self._awaiting_snapshot: set[InstrumentId] = set(self.books)
        self._last_frame: dict[InstrumentId, int] = {}
        checker = OkxChecksum()
        for book in self.books.values():
            book.checker = checker
            book.buffering = False  # until the stream shows seqIds a REST snapshot can bridge

    # --- connection ------------------------------------------------------------------

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return one subscribe message for the connection's instruments."""
        return [subscribe(instruments)] if instruments else []

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str] | None:
        """Bridge from REST where the stream has seqIds; else resubscribe the book."""
        if instrument.id in self._with_ids:
            return None
        return [subscribe([instrument], "unsubscribe", [BOOK_CHANNEL]),
                subscribe([instrument], "subscribe", [BOOK_CHANNEL])]

    def reset_books(self, reason: str, instruments: Iterable[InstrumentId] | None = None) -> None:
        """Forget book state on a new connection (the ids' era is learned again)."""
        ids = list(self.books if instruments is None else instruments)
        for iid in ids:
            self._awaiting_snapshot.add(iid)
            self._last_frame.pop(iid, None)
        super().reset_books(reason, ids)

    # --- frames ------------------------------------------------------------------------

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one frame."""
        if frame == b"pong":
            return
        if frame.startswith(b'{"event":'):
            self._event(frame)
            return
        channel, inst_id = route(frame)
        inst = self._by_inst_id.get(inst_id)
        if inst is None:
            raise DataError(f"frame for unsubscribed instrument {inst_id!r}")
        if channel == b"books":
            self._book(frame, inst, ts_init)
        else:
            self._market(channel, orjson.loads(frame)["data"], inst, ts_init)

    def _market(self, channel: bytes, data: list, inst: Instrument, ts_init: int) -> None:
        if channel == b"trades":
            for trade in parse_trades(data, inst, ts_init):
                self.bus.publish(trade)
        elif channel == b"tickers":
            if self.bus.wants(Quote):
                self.bus.publish(parse_ticker(data[0], inst, ts_init))
        elif channel == b"funding-rate":
            self.bus.publish(parse_funding(data[0], inst, ts_init))
        elif channel == b"mark-price":
            self.bus.publish(parse_mark(data[0], inst, ts_init))
        else:
            raise DataError(f"unknown channel {channel!r}")

    def _event(self, frame: bytes) -> None:
        msg = orjson.loads(frame)
        if msg.get("event") in ("subscribe", "unsubscribe"):
            return
        raise DataError(f"venue said {msg.get('event')}: {msg.get('code')} {msg.get('msg')}")

    def _book(self, frame: bytes, inst: Instrument, ts_init: int) -> None:
        header, levels = self._header, self._levels
        n = scan_book(frame, data_offset(frame), inst, header, levels)
        ts_ms, checksum, seq, prev = header.tolist()
        ts_event = ts_ms * _MS if ts_ms != MISSING else ts_init
        crc = None if checksum in (MISSING, 0) else checksum
        book = self.books[inst.id]
        if frame.find(b'"action":"snapshot"', 0, 120) >= 0:
            self._awaiting_snapshot.discard(inst.id)
            self._last_frame.pop(inst.id, None)
            book.on_snapshot(_snapshot(inst, levels[:n], -1 if seq == MISSING else seq,
                                       ts_event, ts_init), crc)
            return
        if seq == MISSING:
            # No ids to chain: a repeated frame is the only trace of a duplicate.
            fingerprint = zlib.crc32(frame)
            if self._last_frame.get(inst.id) == fingerprint:
                book.invalidate("duplicate", ts_event, ts_init)
                return
            self._last_frame[inst.id] = fingerprint
            book.on_delta(levels, n, -1, -1, -1, ts_event, ts_init, crc)
            return
        if inst.id not in self._with_ids:
            self._with_ids.add(inst.id)
            book.buffering = True
        book.on_delta(levels, n, seq, seq, prev, ts_event, ts_init, crc)
        if inst.id in self._awaiting_snapshot and not book.valid:
            # Updates with ids but no snapshot: bootstrap from REST (OKX's 2026 procedure).
            self._awaiting_snapshot.discard(inst.id)
            self._need_snapshot(inst.id, "no_snapshot")
