"""Bybit v5 public market data: spot, linear and inverse (orderbook, publicTrade, tickers).

Book rules (../shared/EXCHANGES.md §5): `orderbook.{depth}.{symbol}` sends a `snapshot`, then
`delta`s whose update id `u` grows by exactly 1 per message (verified on Bybit's own dump).
Any `snapshot`, and any message with `u == 1` (a service restart), replaces the local book;
`u != last + 1` is a gap, and the book stays invalid until the next snapshot (resubscribe).
Sizes are absolute and `"0"` deletes a level. The REST `/v5/market/orderbook` snapshot carries
the `u` of the 1000-level stream, so it bridges only that depth.
Keep-alive: `{"op":"ping"}` every 20 s; the server drops a silent connection after 10 min.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import orjson

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.core.jsonscan import MISSING, key_code, scan_object
from tradebot.core.levels import first_invalid_level
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds.base import Feed
from tradebot.feeds.parsing import Scratch, decode, finite
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Category:
    """Endpoints of one Bybit product category."""

    category: str
    ws_url: str
    kind: MarketKind
    tickers: bool  # linear/inverse tickers carry mark price, funding and best bid/ask


REST_URL = "https://api.bybit.com"
VENUES = {
    "bybit": Category("spot", "wss://stream.bybit.com/v5/public/spot", MarketKind.SPOT,
                       tickers=False),
    "bybit_linear": Category("linear", "wss://stream.bybit.com/v5/public/linear",
                              MarketKind.LINEAR_PERP, tickers=True),
    "bybit_inverse": Category("inverse", "wss://stream.bybit.com/v5/public/inverse",
                               MarketKind.INVERSE_PERP, tickers=True),
}
# orderbook depths per the v5 docs (500 is what the 2024 linear dump used).
DEPTHS = (1, 50, 200, 500, 1000)
DEFAULT_DEPTH = 1000  # the depth whose `u` the REST snapshot shares
CHANNELS = ("orderbook", "publicTrade", "tickers")
PING_INTERVAL_S = 20.0
PING = '{"op":"ping"}'
MAX_ARGS_PER_REQUEST = 10  # spot's limit; used for every category
MAX_ARGS_CHARS = 21_000  # per connection

_HEADER_CODES = np.array([key_code("u"), key_code("seq")], np.int64)
_REST_CODES = np.array([key_code("u"), key_code("seq"), key_code("ts"), key_code("cts")],
                       np.int64)
_B, _A = key_code("b"), key_code("a")
_MS = 1_000_000


class BybitRule:
    """`u` continuity: every message is the previous `u` + 1; a snapshot resets."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot."""
        if last <= snapshot_seq:
            return "drop"
        return "apply" if first == snapshot_seq + 1 else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after an applied one: anything but `u` + 1 (lost, repeated or
        reordered) is a gap."""
        return "apply" if first == last_applied + 1 else "gap"


# --- symbols and instruments -------------------------------------------------------------


def venue_symbol(symbol: str) -> str:
    """Map a normalised symbol (`BTC-USDT`, `BTC-USDT-PERP`, `BTC-USD-PERP`) to Bybit's."""
    parts = symbol.split("-")
    if (len(parts) == 3 and parts[2] == "PERP") or len(parts) == 2:
        return parts[0] + parts[1]
    raise ValueError(f"symbol {symbol!r} is not BASE-QUOTE or BASE-QUOTE-PERP")


def normalised_symbol(base: str, quote: str, kind: MarketKind) -> str:
    """Return the normalised symbol of a Bybit instrument."""
    return f"{base}-{quote}" if kind is MarketKind.SPOT else f"{base}-{quote}-PERP"


def parse_instruments(body: bytes, venue: str) -> list[Instrument]:
    """Parse `/v5/market/instruments-info` (or the legacy `/v2/public/symbols`) for `venue`.

    Perpetuals only for linear/inverse (dated futures are skipped), trading status only.
    """
    try:
        return _parse_instruments(body, venue)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"malformed instruments body: {exc!r}") from None


def _parse_instruments(body: bytes, venue: str) -> list[Instrument]:
    doc = decode(body)
    if "result" in doc and isinstance(doc["result"], list):
        return _parse_v2_symbols(doc["result"], venue)
    rows = doc.get("result", {}).get("list")
    if not isinstance(rows, list):
        raise DataError("instruments body has no result.list")
    spec = VENUES[venue]
    out = []
    for row in rows:
        if row.get("status") != "Trading":
            continue
        contract = row.get("contractType", "")
        if spec.kind is not MarketKind.SPOT and not contract.endswith("Perpetual"):
            continue
        lot = row["lotSizeFilter"]
        step = lot.get("qtyStep") or lot["basePrecision"]
        min_notional = lot.get("minNotionalValue") or lot.get("minOrderAmt") or "0"
        out.append(Instrument(
            id=InstrumentId(normalised_symbol(row["baseCoin"], row["quoteCoin"], spec.kind), venue),
            venue_symbol=row["symbol"], kind=spec.kind, base=row["baseCoin"],
            quote=row["quoteCoin"], tick_size=Decimal(row["priceFilter"]["tickSize"]),
            lot_size=Decimal(step), min_notional=Decimal(min_notional),
        ))
    return out


def _parse_v2_symbols(rows: list[dict], venue: str) -> list[Instrument]:
    # The retired v2 list mixes linear (USDT) and inverse (USD) contracts, dated ones included.
    spec = VENUES[venue]
    out = []
    for row in rows:
        linear = row["quote_currency"] == "USDT"
        if row["name"] != row["alias"] or linear != (spec.kind is MarketKind.LINEAR_PERP):
            continue
        if spec.kind is MarketKind.SPOT:
            continue
        out.append(Instrument(
            id=InstrumentId(normalised_symbol(row["base_currency"], row["quote_currency"],
                                              spec.kind), venue),
            venue_symbol=row["name"], kind=spec.kind, base=row["base_currency"],
            quote=row["quote_currency"],
            tick_size=Decimal(row["price_filter"]["tick_size"]),
            lot_size=Decimal(str(row["lot_size_filter"]["qty_step"])), min_notional=Decimal(0),
        ))
    return out


# --- pure parsing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookFrame:
    """What an orderbook frame says besides its levels (which stay in the scratch)."""

    snapshot: bool
    update_id: int
    n_levels: int
    ts_event_ms: int


def scan_book(frame: bytes, instrument: Instrument, scratch: Scratch) -> BookFrame:
    """Scan an `orderbook.*` frame: levels into `scratch.levels`, ids and times returned."""
    data = frame.find(b'"data":')
    if data < 0:
        raise DataError("orderbook frame has no data")
    header = scratch.header
    header[0] = MISSING
    n = scan_object(np.frombuffer(frame, np.uint8), data + 7, _HEADER_CODES, header, _B, _A,
                    instrument.price_decimals, instrument.size_decimals, scratch.levels)
    if n < 0:
        raise DataError(f"orderbook frame for {instrument.id} not scannable (code {n})")
    update_id = int(header[0])
    if update_id == MISSING:
        raise DataError(f"orderbook frame for {instrument.id} lacks u")
    if n and first_invalid_level(scratch.levels, n) >= 0:
        raise DataError(f"orderbook frame for {instrument.id} has a negative price or size")
    # The matching-engine time `cts` follows the data object; the message `ts` precedes it.
    cts = frame.rfind(b'"cts":')
    ts_ms = _int_at(frame, cts + 6) if cts > data else _int_at(frame, frame.find(b'"ts":') + 5)
    if frame.find(b'"type":"delta"', 0, data) >= 0:
        snapshot = False
    else:
        snapshot = (frame.find(b'"type":"snapshot"', 0, data) >= 0
                    or frame.find(b'"type":"snapshot"', max(data, len(frame) - 64)) >= 0)
    return BookFrame(snapshot=snapshot or update_id == 1, update_id=update_id, n_levels=n,
                     ts_event_ms=ts_ms)


def _int_at(frame: bytes, pos: int) -> int:
    # The integer value starting at `pos` (the venue's ms timestamps); pos < 5: no such key.
    if pos < 5:
        raise DataError("frame lacks ts")
    text = frame[pos:pos + 24].partition(b",")[0].partition(b"}")[0]
    if not text.strip().isdigit():
        raise DataError(f"ts {text!r} is not an integer")
    return int(text)


def levels_to_snapshot(levels: np.ndarray, n: int, instrument: Instrument, sequence: int,
                       ts_event: int, ts_init: int) -> BookSnapshot:
    """Build a BookSnapshot from scanned (side, price, size) levels."""
    rows = levels[:n]
    return BookSnapshot(
        instrument=instrument.id,
        bids=np.ascontiguousarray(rows[rows[:, 0] == 1, 1:]),
        asks=np.ascontiguousarray(rows[rows[:, 0] == -1, 1:]),
        sequence=sequence, ts_event=ts_event, ts_init=ts_init,
    )


def parse_snapshot(body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
    """Parse a REST `/v5/market/orderbook` response into a BookSnapshot (sequence `u`)."""
    start = body.find(b'"result":')
    if start < 0:
        raise DataError(f"orderbook snapshot for {instrument.id} has no result")
    values = np.full(4, MISSING, np.int64)
    levels = np.empty((body.count(b"[") + 1, 3), np.int64)
    n = scan_object(np.frombuffer(body, np.uint8), start + 9, _REST_CODES, values, _B, _A,
                    instrument.price_decimals, instrument.size_decimals, levels)
    if n < 0 or values[0] == MISSING:
        raise DataError(f"orderbook snapshot for {instrument.id} not parseable (code {n})")
    if first_invalid_level(levels, n) >= 0:
        raise DataError(f"orderbook snapshot for {instrument.id} has a negative price or size")
    ts_ms = values[3] if values[3] != MISSING else values[2]
    return levels_to_snapshot(levels, n, instrument, int(values[0]),
                              int(ts_ms) * _MS if ts_ms != MISSING else ts_init, ts_init)


def parse_trades(doc: dict, instrument: Instrument, ts_init: int) -> list[Trade]:
    """Parse a `publicTrade` message (`S` is the taker's side)."""
    return [
        Trade(instrument=instrument.id, price=finite(t["p"]), size=finite(t["v"]),
              aggressor=Side.BUY if t["S"] == "Buy" else Side.SELL, trade_id=str(t["i"]),
              ts_event=int(t["T"]) * _MS, ts_init=ts_init)
        for t in doc["data"]
    ]


@dataclass(slots=True)
class TickerState:
    """The latest ticker fields of one instrument (deltas carry only what changed)."""

    mark: float | None = None
    index: float | None = None
    funding_rate: float | None = None
    next_funding_ms: int | None = None
    bid: float | None = None
    bid_size: float | None = None
    ask: float | None = None
    ask_size: float | None = None


_TICKER_FIELDS = (("markPrice", "mark"), ("indexPrice", "index"),
                  ("fundingRate", "funding_rate"), ("bid1Price", "bid"),
                  ("bid1Size", "bid_size"), ("ask1Price", "ask"), ("ask1Size", "ask_size"))


def merge_ticker(state: TickerState, data: dict) -> set[str]:
    """Merge a `tickers` snapshot or delta into `state`; return the names that changed."""
    if not isinstance(data, dict):
        raise DataError("ticker data is not an object")
    changed = set()
    for wire, name in _TICKER_FIELDS:
        value = data.get(wire)
        if value not in (None, ""):
            setattr(state, name, finite(value, None if name == "funding_rate" else 0.0))
            changed.add(name)
    nft = data.get("nextFundingTime")
    if nft not in (None, "", "0"):
        state.next_funding_ms = int(nft)
        changed.add("next_funding_ms")
    return changed


def ticker_events(state: TickerState, changed: set[str], instrument: Instrument,
                  ts_event: int, ts_init: int) -> list[MarkPrice | FundingRate | Quote]:
    """Return the events a merged ticker update implies."""
    iid = instrument.id
    out: list[MarkPrice | FundingRate | Quote] = []
    if "mark" in changed and state.mark is not None:
        out.append(MarkPrice(instrument=iid, mark_price=state.mark, index_price=state.index,
                             ts_event=ts_event, ts_init=ts_init))
    if changed & {"funding_rate", "next_funding_ms"} and state.funding_rate is not None:
        nft = state.next_funding_ms
        out.append(FundingRate(instrument=iid, rate=state.funding_rate,
                               next_funding_ns=nft * _MS if nft is not None else None,
                               ts_event=ts_event, ts_init=ts_init))
    if changed & {"bid", "bid_size", "ask", "ask_size"} and None not in (
            state.bid, state.bid_size, state.ask, state.ask_size):
        out.append(Quote(instrument=iid, bid_price=state.bid or 0.0,
                         bid_size=state.bid_size or 0.0, ask_price=state.ask or 0.0,
                         ask_size=state.ask_size or 0.0, ts_event=ts_event, ts_init=ts_init))
    return out


def topics(venue: str, instruments: Iterable[Instrument], depth: int) -> list[str]:
    """Return the topics to subscribe for `instruments`."""
    spec = VENUES[venue]
    out = []
    for inst in instruments:
        sym = inst.venue_symbol
        out += [f"orderbook.{depth}.{sym}", f"publicTrade.{sym}"]
        if spec.tickers:
            out.append(f"tickers.{sym}")
    return out


def subscribe_requests(args: list[str], op: str = "subscribe") -> list[str]:
    """Batch topics into `op` requests of at most MAX_ARGS_PER_REQUEST args."""
    return [
        orjson.dumps({"op": op, "args": args[i:i + MAX_ARGS_PER_REQUEST]}).decode()
        for i in range(0, len(args), MAX_ARGS_PER_REQUEST)
    ]


def split_by_args(venue: str, instruments: list[Instrument],
                  depth: int) -> list[list[Instrument]]:
    """Group instruments into connections whose topics fit MAX_ARGS_CHARS."""
    groups: list[list[Instrument]] = [[]]
    used = 0
    for inst in instruments:
        size = sum(len(t) + 3 for t in topics(venue, [inst], depth))  # quotes and comma
        if groups[-1] and used + size > MAX_ARGS_CHARS:
            groups.append([])
            used = 0
        groups[-1].append(inst)
        used += size
    return groups


def snapshot_url(venue: str, rest_url: str, instrument: Instrument, limit: int = 0) -> str:
    """Return the REST orderbook URL (limit 1000, whatever is asked: the depth whose `u` it
    shares)."""
    base = rest_url or REST_URL
    return (f"{base}/v5/market/orderbook?category={VENUES[venue].category}"
            f"&symbol={instrument.venue_symbol}&limit=1000")


def subscribed_symbols(client_frames: Sequence[bytes]) -> set[str]:
    """Return the symbols of the topics (`orderbook.50.BTCUSDT`) that client frames subscribe."""
    symbols: set[str] = set()
    for frame in client_frames:
        try:
            args = orjson.loads(frame).get("args") or []
        except (orjson.JSONDecodeError, AttributeError):
            continue
        symbols.update(str(a).rpartition(".")[2] for a in args)
    return symbols


SPECS = {
    venue: VenueSpec(
        venue=venue, ws_url=category.ws_url, rest_url=REST_URL,
        channels=CHANNELS if category.tickers else CHANNELS[:2], sequence_rule=BybitRule,
        instrument_paths=(f"/v5/market/instruments-info?category={category.category}"
                          "&limit=1000",),
        instrument_parser=parse_instruments, keepalive=(PING, PING_INTERVAL_S),
        # Subscribing sends each book's snapshot; a resync is an unsubscribe/subscribe.
        snapshot_on_subscribe=True,
        snapshot_url=functools.partial(snapshot_url, venue), snapshot_parser=parse_snapshot,
    )
    for venue, category in VENUES.items()
}


# --- the feed ----------------------------------------------------------------------------


class BybitFeed(Feed):
    """One Bybit category's public stream: books, trades and (perpetuals) mark and funding."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus, clock: Clock,
                 depth: int = DEFAULT_DEPTH) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"Bybit orderbook depth {depth} is not one of {DEPTHS}")
        super().__init__(venue, instruments, bus, clock)
        self.depth = depth
        self._by_symbol = {i.venue_symbol: i for i in self.instruments.values()}
        for book in self.books.values():
            book.buffering = False  # deltas before the next snapshot are superseded by it
            book.max_depth = depth
        self._scratch = Scratch.new(4)
        self._routes: dict[bytes, tuple[str, Instrument]] = {}
        self._tickers = {iid: TickerState() for iid in self.instruments}

    def split_subscriptions(self) -> list[list[Instrument]]:
        """Group instruments so each connection's args stay under MAX_ARGS_CHARS."""
        return split_by_args(self.venue, list(self.instruments.values()), self.depth)

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the subscribe requests for `instruments`' topics."""
        return subscribe_requests(topics(self.venue, instruments, self.depth))

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str] | None:
        """Return the requests that make Bybit send a fresh book snapshot."""
        topic = [f"orderbook.{self.depth}.{instrument.venue_symbol}"]
        return subscribe_requests(topic, "unsubscribe") + subscribe_requests(topic)

    def _route(self, topic: bytes) -> tuple[str, Instrument]:
        route = self._routes.get(topic)
        if route is None:
            channel, _, symbol = topic.decode().rpartition(".")
            kind = channel.partition(".")[0]
            inst = self._by_symbol.get(symbol)
            if kind not in CHANNELS or inst is None:
                raise DataError(f"frame for unknown or unsubscribed topic {topic!r}")
            route = self._routes[topic] = (kind, inst)
        return route

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one frame by its topic; control replies (pong, subscribe acks) are checked."""
        start = frame.find(b'"topic":"')
        if start < 0:
            self._control(frame)
            return
        end = frame.index(b'"', start + 9)
        kind, inst = self._route(frame[start + 9:end])
        if kind == "orderbook":
            self._book(frame, inst, ts_init)
        elif kind == "publicTrade":
            for trade in parse_trades(decode(frame), inst, ts_init):
                self.bus.publish(trade)
        else:
            doc = decode(frame)
            state = self._tickers[inst.id]
            changed = merge_ticker(state, doc["data"])
            for event in ticker_events(state, changed, inst, int(doc["ts"]) * _MS, ts_init):
                self.bus.publish(event)

    def _book(self, frame: bytes, inst: Instrument, ts_init: int) -> None:
        scratch = self._scratch
        info = scan_book(frame, inst, scratch)
        ts_event = info.ts_event_ms * _MS
        if info.snapshot:
            self.on_snapshot(levels_to_snapshot(scratch.levels, info.n_levels, inst,
                                                info.update_id, ts_event, ts_init))
        else:
            self.books[inst.id].on_delta(scratch.levels, info.n_levels, info.update_id,
                                         info.update_id, -1, ts_event, ts_init)

    def _control(self, frame: bytes) -> None:
        doc = decode(frame)
        op = doc.get("op")
        if op in ("ping", "pong") or doc.get("ret_msg") == "pong":
            return
        if op in ("subscribe", "unsubscribe"):
            if doc.get("success") is False:
                self.parse_error("subscribe_rejected", DataError(str(doc.get("ret_msg"))),
                                 frame)
            return
        raise DataError(f"unknown Bybit message (op {op!r})")
