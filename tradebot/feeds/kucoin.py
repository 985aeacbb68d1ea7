"""KuCoin spot public market data (`/market/level2`, `/market/match`, `/market/ticker`).

Connecting (../shared/EXCHANGES.md §6): `POST /api/v1/bullet-public` returns a token, the
websocket endpoint and `pingInterval`; connect to `<endpoint>?token=..&connectId=..`, wait for
`welcome`, subscribe, and send `{"type":"ping"}` every `pingInterval`.

Book rules: buffer `trade.l2update` messages, take a REST level2 snapshot (`sequence`), drop
every change whose own sequence (third element) is <= the snapshot's, then require
`sequenceStart == previous sequenceEnd + 1`; anything else is a gap (re-snapshot). Price "0"
advances the sequence only; size "0" deletes the level. Each message is cut into one delta per
change (the sequence range up to that change) whenever it may straddle the book's sequence, so
a snapshot taken mid-message bridges exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import numpy as np
import orjson

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import FeedConfig
from tradebot.core.jsonscan import MISSING, key_code, scan_object
from tradebot.core.levels import first_invalid_level
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, Quote, Trade
from tradebot.feeds.base import Feed
from tradebot.feeds.parsing import Scratch, decode, finite
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------

REST_URL = "https://api.kucoin.com"
BULLET_PATH = "/api/v1/bullet-public"
# The full book (/api/v3/market/orderbook/level2) needs an API key; the public partial book
# carries the same `sequence` and bridges the same way (levels beyond 100 stay unknown until
# they change).
SNAPSHOT_PATH = "/api/v1/market/orderbook/level2_100"
INSTRUMENTS_PATH = "/api/v2/symbols"
VENUES = ("kucoin",)
CHANNELS = {"/market/level2": "level2", "/market/match": "match", "/market/ticker": "ticker"}
IGNORED_CHANNELS = ("/market/candles",)  # recorded sessions carry them; nothing consumes them
MAX_SYMBOLS_PER_TOPIC = 100
# Book sizes are finer than the order lot (remainders of orders placed by funds); 8 decimals
# covers what KuCoin sends for almost every pair, and an instrument's config may raise it.
BOOK_SIZE_DECIMALS = 8
DEFAULT_PING_INTERVAL_S = 18.0
PING = '{"id":"ping","type":"ping"}'
# Third-party sources cite 100 symbols (or 300 subscriptions) per connection; 100 symbols x 3
# topics stays inside both readings.
MAX_SYMBOLS_PER_CONNECTION = 100

_HEADER_CODES = np.array([key_code("sequenceStart"), key_code("sequenceEnd"), key_code("time")],
                         np.int64)
_SNAPSHOT_CODES = np.array([key_code("sequence"), key_code("time")], np.int64)
_NO_CODES = np.empty(0, np.int64)
_BIDS, _ASKS = key_code("bids"), key_code("asks")
_NO_KEY = key_code("")
_MS = 1_000_000


class KucoinRule:
    """`sequenceStart`/`sequenceEnd` continuity bridged by the REST `sequence`."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot."""
        if last <= snapshot_seq:
            return "drop"
        return "apply" if first <= snapshot_seq + 1 else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after an applied one: lost, repeated or reordered is a gap."""
        return "apply" if first == last_applied + 1 else "gap"


@dataclass(frozen=True, slots=True)
class Bullet:
    """What `bullet-public` grants: where to connect, with which token, how often to ping."""

    endpoint: str
    token: str
    ping_interval_s: float
    ping_timeout_s: float


# --- symbols and instruments -------------------------------------------------------------


def parse_instruments(body: bytes, venue: str = "kucoin") -> list[Instrument]:
    """Parse `/api/v1/symbols` (or `/api/v2/symbols`) into tradable spot instruments.

    The normalised symbol is `BASE-QUOTE` from the currencies (KuCoin's `BCHSV-USDT` trades
    BSV, so it becomes `BSV-USDT`).
    """
    try:
        return _parse_instruments(body, venue)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"malformed instruments body: {exc!r}") from None


def _parse_instruments(body: bytes, venue: str = "kucoin") -> list[Instrument]:
    rows = _data(decode(body))
    if not isinstance(rows, list):
        raise DataError("symbols body has no data list")
    out = []
    for row in rows:
        if not row.get("enableTrading", False):
            continue
        base, quote = row["baseCurrency"], row["quoteCurrency"]
        out.append(Instrument(
            id=InstrumentId(f"{base}-{quote}", venue), venue_symbol=row["symbol"],
            kind=MarketKind.SPOT, base=base, quote=quote,
            tick_size=Decimal(row["priceIncrement"]), lot_size=Decimal(row["baseIncrement"]),
            min_notional=Decimal(row.get("minFunds") or row.get("quoteMinSize") or "0"),
            size_precision=BOOK_SIZE_DECIMALS,
        ))
    return out


def parse_bullet(body: bytes) -> Bullet:
    """Parse a `bullet-public` response."""
    try:
        return _parse_bullet(body)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"malformed bullet body: {exc!r}") from None


def _parse_bullet(body: bytes) -> Bullet:
    data = _data(decode(body))
    servers = data.get("instanceServers") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not servers:
        raise DataError("bullet response has no instanceServers")
    server = servers[0]
    return Bullet(endpoint=server["endpoint"], token=data["token"],
                  ping_interval_s=int(server.get("pingInterval", 18_000)) / 1000,
                  ping_timeout_s=int(server.get("pingTimeout", 10_000)) / 1000)


def connect_url(bullet: Bullet, connect_id: str) -> str:
    """Return the websocket URL for a bullet."""
    sep = "&" if "?" in bullet.endpoint else "?"
    return f"{bullet.endpoint}{sep}token={bullet.token}&connectId={connect_id}"


# --- pure parsing ------------------------------------------------------------------------


def _data(doc: dict) -> object:
    if doc.get("code") not in (None, "200000"):
        raise DataError(f"KuCoin error {doc.get('code')}: {doc.get('msg')}")
    return doc.get("data")


def scan_l2(frame: bytes, instrument: Instrument,
            scratch: Scratch) -> tuple[int, int, int, int]:
    """Scan a `trade.l2update`: return (sequenceStart, sequenceEnd, time ms or MISSING, number
    of changes), the changes written to `scratch.levels` as (side, price, size)."""
    data = frame.find(b'"data":')
    changes = frame.find(b'"changes":', data)
    if data < 0 or changes < 0:
        raise DataError("l2update frame has no data.changes")
    buf = np.frombuffer(frame, np.uint8)
    header = scratch.header
    header.fill(MISSING)
    code = scan_object(buf, data + 7, _HEADER_CODES, header, _NO_KEY, _NO_KEY, 0, 0,
                       scratch.levels)
    start, end, time_ms = header.tolist()
    if code < 0 or start == MISSING or end == MISSING:
        raise DataError(f"l2update frame lacks sequenceStart/sequenceEnd (code {code})")
    n = scan_object(buf, changes + 10, _NO_CODES, header, _BIDS, _ASKS,
                    instrument.price_decimals, instrument.size_decimals, scratch.levels)
    if n < 0:
        raise DataError(f"l2update changes for {instrument.id} not scannable (code {n})")
    if n and first_invalid_level(scratch.levels, n) >= 0:
        raise DataError(f"l2update for {instrument.id} has a negative price or size")
    return start, end, time_ms, n


def change_sequences(frame: bytes) -> list[int]:
    """Return the sequence of every change, in the order `scan_l2` writes them."""
    changes = decode(frame)["data"]["changes"]
    if not isinstance(changes, dict):
        raise DataError("l2update changes is not an object")
    # orjson keeps the frame's key order, which is the order the scanner met the sides in.
    return [int(c[2]) for side, rows in changes.items() if side in ("bids", "asks")
            for c in rows]


def split_by_change(levels: np.ndarray, seqs: list[int], start: int,
                    end: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """Cut one message into (levels, first, last) deltas, one per change in sequence order.

    The deltas tile [start, end]: the k-th covers (previous change's sequence, its own], the
    last reaches `end`, so both the bridge and the chain rule see the original range.
    """
    if len(seqs) != len(levels):
        raise DataError("change sequences do not match the scanned changes")
    if not seqs:
        yield levels, start, end
        return
    order = sorted(range(len(seqs)), key=seqs.__getitem__)
    first = start
    for k, i in enumerate(order):
        seq = seqs[i]
        if not first <= seq <= end:
            raise DataError(f"change sequence {seq} outside [{first}, {end}]")
        last = end if k == len(order) - 1 else seq
        yield levels[i:i + 1], first, last
        first = seq + 1


def parse_snapshot(body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
    """Parse a REST level2 response (`data.sequence`, `bids`, `asks`)."""
    start = body.find(b'"data":')
    if start < 0:
        raise DataError(f"level2 snapshot for {instrument.id} has no data ({body[:80]!r})")
    values = np.full(2, MISSING, np.int64)
    levels = np.empty((body.count(b"[") + 1, 3), np.int64)
    n = scan_object(np.frombuffer(body, np.uint8), start + 7, _SNAPSHOT_CODES, values, _BIDS,
                    _ASKS, instrument.price_decimals, instrument.size_decimals, levels)
    if n < 0 or values[0] == MISSING:
        raise DataError(f"level2 snapshot for {instrument.id} not parseable (code {n})")
    if first_invalid_level(levels, n) >= 0:
        raise DataError(f"level2 snapshot for {instrument.id} has a negative price or size")
    rows = levels[:n]
    return BookSnapshot(
        instrument=instrument.id,
        bids=np.ascontiguousarray(rows[rows[:, 0] == 1, 1:]),
        asks=np.ascontiguousarray(rows[rows[:, 0] == -1, 1:]),
        sequence=int(values[0]),
        ts_event=int(values[1]) * _MS if values[1] != MISSING else ts_init,
        ts_init=ts_init,
    )


def parse_match(data: dict, instrument: Instrument, ts_init: int) -> Trade:
    """Parse a `trade.l3match` payload (`side` is the taker's; `time` is in ns)."""
    return Trade(instrument=instrument.id, price=finite(data["price"]),
                 size=finite(data["size"]),
                 aggressor=Side.BUY if data["side"] == "buy" else Side.SELL,
                 trade_id=str(data["tradeId"]), ts_event=int(data["time"]), ts_init=ts_init)


def parse_ticker(data: dict, instrument: Instrument, ts_init: int) -> Quote:
    """Parse a `trade.ticker` payload into the best bid and offer."""
    return Quote(instrument=instrument.id, bid_price=finite(data["bestBid"]),
                 bid_size=finite(data["bestBidSize"]), ask_price=finite(data["bestAsk"]),
                 ask_size=finite(data["bestAskSize"]), ts_event=int(data["time"]) * _MS,
                 ts_init=ts_init)


def topics(instruments: Iterable[Instrument]) -> list[str]:
    """Return the topics for `instruments`, at most MAX_SYMBOLS_PER_TOPIC symbols each."""
    symbols = [i.venue_symbol for i in instruments]
    return [f"{channel}:{','.join(symbols[i:i + MAX_SYMBOLS_PER_TOPIC])}"
            for channel in CHANNELS for i in range(0, len(symbols), MAX_SYMBOLS_PER_TOPIC)]


def snapshot_url(rest_url: str, instrument: Instrument, limit: int = 0) -> str:
    """Return the REST level2 snapshot URL (always the public 100-level book)."""
    return f"{rest_url or REST_URL}{SNAPSHOT_PATH}?symbol={instrument.venue_symbol}"


SPECS = {
    venue: VenueSpec(
        # No fixed websocket endpoint: each connection goes where its bullet token says.
        venue=venue, ws_url="", rest_url=REST_URL, channels=tuple(CHANNELS),
        sequence_rule=KucoinRule, instrument_paths=(INSTRUMENTS_PATH,),
        instrument_parser=parse_instruments,
        max_instruments_per_connection=MAX_SYMBOLS_PER_CONNECTION,
        keepalive=(PING, DEFAULT_PING_INTERVAL_S),  # until a bullet says otherwise
        snapshot_url=snapshot_url, snapshot_parser=parse_snapshot,
    )
    for venue in VENUES
}


# --- the feed ----------------------------------------------------------------------------


class KucoinFeed(Feed):
    """KuCoin spot: level2 books bridged to REST snapshots, matches, best bid/ask."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._by_symbol = {i.venue_symbol: i for i in self.instruments.values()}
        self._scratch = Scratch.new(3)
        self._routes: dict[bytes, tuple[str, Instrument | None]] = {}
        self._ids = itertools.count(1)
        self.bullet: Bullet | None = None

    @property
    def ping_interval_s(self) -> float:
        """Return how often to ping (the bullet's `pingInterval`)."""
        return self.bullet.ping_interval_s if self.bullet else DEFAULT_PING_INTERVAL_S

    def bullet_url(self, config: FeedConfig) -> str:
        """Return the URL to POST for a connection token."""
        return f"{config.rest_url or self.spec.rest_url}{BULLET_PATH}"

    def connection_url(self, config: FeedConfig, instruments: Sequence[Instrument]) -> str:
        """Return the websocket URL of the current bullet (each connection its own id)."""
        if config.ws_url:
            return config.ws_url
        if self.bullet is None:
            raise DataError("KuCoin needs a bullet-public token before connecting")
        return connect_url(self.bullet, str(next(self._ids)))

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return one subscribe request per topic of `instruments`."""
        return [orjson.dumps({"id": str(next(self._ids)), "type": "subscribe", "topic": topic,
                              "privateChannel": False, "response": True}).decode()
                for topic in topics(instruments)]

    def keepalive(self) -> tuple[str | bytes, float] | None:
        """Return the application-level ping and the bullet's `pingInterval`."""
        return PING, self.ping_interval_s

    async def prepare_connection(self, session: aiohttp.ClientSession,
                                 config: FeedConfig) -> None:
        """Fetch a fresh bullet-public token (each connection needs one; tokens expire)."""
        if config.ws_url:
            return
        async with session.post(self.bullet_url(config),
                                timeout=aiohttp.ClientTimeout(total=10)) as resp:
            resp.raise_for_status()
            self.bullet = parse_bullet(await resp.read())

    def instrument_of(self, symbol: str) -> Instrument:
        """Return the subscribed instrument of a KuCoin symbol; DataError when not subscribed."""
        inst = self._by_symbol.get(symbol)
        if inst is None:
            raise DataError(f"symbol {symbol!r} is not subscribed")
        return inst

    def _route(self, topic: bytes) -> tuple[str, Instrument | None]:
        route = self._routes.get(topic)
        if route is None:
            channel, _, symbol = topic.decode().partition(":")
            if channel in IGNORED_CHANNELS:
                route = ("ignored", None)
            elif channel in CHANNELS:
                route = (CHANNELS[channel], self.instrument_of(symbol))
            else:
                raise DataError(f"unknown topic {topic!r}")
            self._routes[topic] = route
        return route

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one frame by its topic; welcome, ack and pong need nothing."""
        start = frame.find(b'"topic":"')
        if start < 0:
            self._control(frame)
            return
        end = frame.index(b'"', start + 9)
        kind, inst = self._route(frame[start + 9:end])
        if inst is None:
            return
        if kind == "level2":
            self._level2(frame, inst, ts_init)
        elif kind == "match":
            self.bus.publish(parse_match(decode(frame)["data"], inst, ts_init))
        elif self.bus.wants(Quote):
            self.bus.publish(parse_ticker(decode(frame)["data"], inst, ts_init))

    def _level2(self, frame: bytes, inst: Instrument, ts_init: int) -> None:
        scratch = self._scratch
        start, end, time_ms, n = scan_l2(frame, inst, scratch)
        ts_event = time_ms * _MS if time_ms != MISSING else ts_init
        book = self.books[inst.id]
        if book.valid and start > book.last_seq:
            book.on_delta(scratch.levels, n, start, end, -1, ts_event, ts_init)
            return
        for levels, first, last in split_by_change(scratch.levels[:n], change_sequences(frame),
                                                   start, end):
            book.on_delta(levels, len(levels), first, last, -1, ts_event, ts_init)

    def _control(self, frame: bytes) -> None:
        doc = decode(frame)
        kind = doc.get("type")
        if kind in ("welcome", "ack", "pong"):
            return
        if kind == "error":
            self.parse_error("venue_error", DataError(str(doc.get("data"))), frame)
            return
        raise DataError(f"unknown KuCoin message type {kind!r}")
