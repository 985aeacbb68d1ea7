"""Serve a recording over a real websocket and HTTP on 127.0.0.1, in the venue's own protocol.

The server plays the recording on one shared timeline, as a venue would: clients that connect
late or reconnect miss what passed meanwhile. A mirror of the venue's own Feed follows the
timeline, so the server always knows each book; a (re)subscription gets a snapshot rendered
from the mirror in the venue's format, and the REST depth endpoint serves one. The daemon's
live code path (FeedRunner, the venue Feed) therefore runs end to end offline, and its books at
the end of the recording equal a clean replay's. Faults for tests: `drop_connections()` cuts
every connection mid-stream; `silent` stops all traffic (frames, acks and pongs).

A venue's server side is a `VenueProtocol`: greetings, acks, pongs, which subscription a frame
belongs to, snapshot rendering and the REST endpoints it answers from the mirror. Here: Kraken
(v1, the recorded protocol), OKX v5, Binance (spot, USD-M, COIN-M combined streams), Bybit v5,
KuCoin (bullet-public, welcome, level2 REST) and Coinbase (Advanced Trade and Exchange).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import orjson
import structlog
import websockets
from aiohttp import web
from websockets.asyncio.server import ServerConnection, serve

from tradebot.bus import Bus
from tradebot.clock import SimClock, monotonic
from tradebot.domain import Instrument
from tradebot.errors import DataError
from tradebot.feeds import binance, bybit, coinbase, kraken, kucoin, okx
from tradebot.feeds.base import Feed
from tradebot.feeds.book import BookSync
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import (
    Entry,
    Recording,
    read_entries,
    read_lines,
    read_rest_lines,
)

log = structlog.get_logger(__name__)

_SNAPSHOT_PREFIX = b'{"lastUpdateId"'


def fixed(units: int, decimals: int, shift: int) -> str:
    """Render integer units at `decimals` as a fixed string with `decimals + shift` places."""
    wire = decimals + shift
    value = units * 10**shift if shift >= 0 else units // 10**-shift
    if wire <= 0:
        return str(value)
    return f"{value // 10**wire}.{value % 10**wire:0{wire}d}"


def canonical(units: int, decimals: int) -> str:
    """Render integer units as the shortest decimal string (`30316`, `0.5`)."""
    text = format(Decimal(units).scaleb(-decimals), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _levels(book: BookSync, side: int) -> list[tuple[int, int]]:
    inst = book.instrument
    return [(int(p.scaleb(inst.price_decimals)), int(s.scaleb(inst.size_decimals)))
            for p, s in book.book.levels(side, 1_000_000)]


class VenueProtocol(Protocol):
    """The server side of a venue's public websocket and REST endpoints."""

    # True where the URL subscribes (Binance): the timeline starts when a client connects,
    # not at its first message.
    subscribes_by_url: bool

    def on_connect(self, client: Client) -> list[str]:
        """Return the frames a new connection gets first (a welcome); read its URL."""

    def on_message(self, text: str, client: Client) -> list[str]:
        """Answer a client message (acks, pongs, snapshots); update its subscriptions."""

    def frame_key(self, frame: bytes) -> str | None:
        """Return the subscription a frame needs (None: every client gets it)."""

    def render(self, text: str, client: Client) -> str:
        """Return a frame as this client sees it (a per-connection sequence number)."""

    def rest(self, method: str, path: str, query: Mapping[str, str]) -> bytes | None:
        """Return a REST body rendered from the mirror (None: not one of these endpoints)."""


CLIENT_QUEUE = 100_000  # frames queued for one client; a venue drops a slower consumer


@dataclass(slots=True)
class Client:
    """One connected websocket client, what it subscribed, and its outgoing frames in order."""

    ws: ServerConnection
    symbols: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))
    sequence: int = 0  # the connection's message counter, where the venue numbers them

    @property
    def query(self) -> dict[str, str]:
        """Return the query parameters of the URL the client connected with."""
        request = self.ws.request
        return dict(parse_qsl(urlsplit(request.path).query)) if request is not None else {}

    def next_sequence(self) -> int:
        """Return this connection's next message number (0 first)."""
        self.sequence += 1
        return self.sequence - 1

    def send(self, text: str) -> None:
        """Queue a frame; a client too slow to keep up is disconnected."""
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            if self.ws.transport is not None:
                self.ws.transport.abort()


class BaseProtocol:
    """What most venues share: no greeting, frames unchanged, no REST of their own."""

    subscribes_by_url = False

    def __init__(self, server: ReplayServer) -> None:
        self.server = server

    def on_connect(self, client: Client) -> list[str]:
        """Return nothing: the client speaks first."""
        return []

    def render(self, text: str, client: Client) -> str:
        """Return the frame unchanged."""
        return text

    def rest(self, method: str, path: str, query: Mapping[str, str]) -> bytes | None:
        """Return None: only recorded REST bodies are served."""
        return None

    def valid_book(self, venue_symbol: str) -> BookSync | None:
        """Return the mirror's book of a venue symbol while it is synced, else None."""
        inst = self.server.instrument(venue_symbol)
        book = self.server.mirror.books.get(inst.id) if inst is not None else None
        return book if book is not None and book.valid else None


class KrakenV1Protocol(BaseProtocol):
    """Kraken websocket v1: `{"event":"subscribe","pair":[...],"subscription":{...}}`."""

    def __init__(self, server: ReplayServer) -> None:
        super().__init__(server)
        self.channel_ids: dict[str, int] = {}

    def frame_key(self, frame: bytes) -> str | None:
        """Return the pair of a book frame."""
        if not frame.startswith(b"["):
            return None
        try:
            name, pair, _ = kraken.split_v1(frame)
        except DataError:
            return None
        return pair.decode() if name.startswith(b"book") else None

    def on_message(self, text: str, client: Client) -> list[str]:
        """Ack (un)subscriptions, answer pings, send a book snapshot on subscribe."""
        msg = orjson.loads(text)
        event = msg.get("event")
        if event == "ping":
            return [orjson.dumps({"event": "pong", "reqid": msg.get("reqid")}).decode()]
        if event not in ("subscribe", "unsubscribe"):
            return [orjson.dumps({"event": "error", "errorMessage": "Unsupported event"}).decode()]
        sub = msg.get("subscription") or {}
        name = sub.get("name")
        channel = f"book-{sub.get('depth', 10)}" if name == "book" else str(name)
        out = []
        for pair in msg.get("pair") or []:
            cid = self.channel_ids.setdefault(f"{channel}:{pair}", 1000 + len(self.channel_ids))
            status = "subscribed" if event == "subscribe" else "unsubscribed"
            out.append(orjson.dumps({"channelID": cid, "channelName": channel, "event":
                                     "subscriptionStatus", "pair": pair, "status": status,
                                     "subscription": sub}).decode())
            if name != "book":
                continue
            if event == "unsubscribe":
                client.symbols.discard(pair)
                continue
            client.symbols.add(pair)
            snapshot = self._snapshot(pair, cid, channel)
            if snapshot is not None:
                out.append(snapshot)
        return out

    def _snapshot(self, pair: str, cid: int, channel: str) -> str | None:
        feed = self.server.mirror
        inst = self.server.instrument(kraken.v2_symbol(pair))
        if inst is None or not isinstance(feed, kraken.KrakenFeed) or \
                not feed.books[inst.id].valid:
            return None
        book = feed.books[inst.id]
        px_shift, sz_shift = feed.wire_shifts(inst.id)
        depth = book.max_depth or 1000
        side = {}
        for key, sign in (("as", -1), ("bs", 1)):
            side[key] = [[fixed(p, inst.price_decimals, px_shift),
                          fixed(s, inst.size_decimals, sz_shift), "0.000000"]
                         for p, s in _levels(book, sign)[:depth]]
        return orjson.dumps([cid, side, channel, pair]).decode()


class OkxProtocol(BaseProtocol):
    """OKX v5 public: `{"op":"subscribe","args":[{"channel":..,"instId":..}]}`, text ping."""

    def frame_key(self, frame: bytes) -> str | None:
        """Return the instId of a book push frame."""
        if not frame.startswith(b'{"arg":') or b'"books"' not in frame[:60]:
            return None
        try:
            return okx.route(frame)[1].decode()
        except DataError:
            return None

    def on_message(self, text: str, client: Client) -> list[str]:
        """Ack (un)subscriptions, answer `ping`, send a book snapshot on subscribe."""
        if text == "ping":
            return ["pong"]
        msg = orjson.loads(text)
        op = msg.get("op")
        if op not in ("subscribe", "unsubscribe"):
            return [orjson.dumps({"event": "error", "code": "60012",
                                  "msg": "Invalid request"}).decode()]
        out = []
        for arg in msg.get("args") or []:
            out.append(orjson.dumps({"event": op, "arg": arg}).decode())
            inst_id = arg.get("instId")
            if op == "unsubscribe":
                if arg.get("channel") == okx.BOOK_CHANNEL:
                    client.symbols.discard(inst_id)
                continue
            client.symbols.add(inst_id)
            if arg.get("channel") == okx.BOOK_CHANNEL:
                snapshot = self._snapshot(inst_id)
                if snapshot is not None:
                    out.append(snapshot)
        return out

    def _snapshot(self, inst_id: str) -> str | None:
        book = self._book(inst_id)
        if book is None:
            return None
        return orjson.dumps({"arg": {"channel": "books", "instId": inst_id},
                             "action": "snapshot", "data": [self.book_data(book)]}).decode()

    def _book(self, inst_id: str) -> BookSync | None:
        feed = self.server.mirror
        inst = next((i for i in feed.instruments.values() if i.venue_symbol == inst_id), None)
        book = feed.books[inst.id] if inst is not None else None
        return book if book is not None and book.valid else None

    def book_data(self, book: BookSync) -> dict[str, Any]:
        """Return the `data` object of a book snapshot, with its checksum."""
        inst = book.instrument
        data: dict[str, Any] = {
            key: [[canonical(p, inst.price_decimals), canonical(s, inst.size_decimals), "0",
                   "1"] for p, s in _levels(book, sign)]
            for key, sign in (("asks", -1), ("bids", 1))}
        data["ts"] = str(book.last_message_ns // 1_000_000)
        data["checksum"] = okx.OkxChecksum().checksum(book.book)
        if book.last_seq != -1:
            data["seqId"] = book.last_seq
            data["prevSeqId"] = -1
        return data

    def rest(self, method: str, path: str, query: Mapping[str, str]) -> bytes | None:
        """Return a REST `/api/v5/market/books` body (only where the stream has seqIds)."""
        if path != okx.BOOKS_PATH:
            return None
        book = self._book(query.get("instId", ""))
        if book is None or book.last_seq == -1:
            return None
        return orjson.dumps({"code": "0", "msg": "", "data": [self.book_data(book)]})


class NotReady(Exception):
    """A REST endpoint the mirror answers, asked before the mirror's book is synced."""


def rfc3339(ns: int) -> str:
    """Render ns since the epoch as RFC 3339 UTC with 9 decimals (Coinbase's `timestamp`)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def _text_after(frame: bytes, key: bytes, limit: int = -1) -> str | None:
    # The string value that follows `key` (`"topic":"`), within the first `limit` bytes.
    start = frame.find(key, 0, limit if limit > 0 else len(frame))
    if start < 0:
        return None
    start += len(key)
    end = frame.find(b'"', start)
    return frame[start:end].decode() if end > start else None


def _pairs(book: BookSync, side: int, depth: int = 1_000_000) -> list[list[str]]:
    inst = book.instrument
    return [[canonical(p, inst.price_decimals), canonical(s, inst.size_decimals)]
            for p, s in _levels(book, side)[:depth]]


class BinanceProtocol(BaseProtocol):
    """Binance combined streams: the URL's `?streams=` subscribes (`SUBSCRIBE` adds more);
    the REST depth snapshot is the mirror's book at request time."""

    subscribes_by_url = True

    def on_connect(self, client: Client) -> list[str]:
        """Subscribe the symbols of the URL's streams; Binance sends no greeting."""
        self._update(client, client.query.get("streams", "").split("/"), add=True)
        return []

    def frame_key(self, frame: bytes) -> str | None:
        """Return the upper-case symbol of a combined-stream frame."""
        if not frame.startswith(b'{"stream":"'):
            return None
        return frame[11:frame.find(b"@", 11)].decode().upper()

    def on_message(self, text: str, client: Client) -> list[str]:
        """Answer `SUBSCRIBE`/`UNSUBSCRIBE` with `{"result":null,"id":..}`."""
        msg = orjson.loads(text)
        method = msg.get("method")
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return [orjson.dumps({"error": {"code": 2, "msg": f"Invalid request: {method}"},
                                  "id": msg.get("id")}).decode()]
        self._update(client, [str(p) for p in msg.get("params") or []],
                     add=method == "SUBSCRIBE")
        return [orjson.dumps({"result": None, "id": msg.get("id")}).decode()]

    def _update(self, client: Client, streams: list[str], add: bool) -> None:
        # Subscriptions are kept per symbol: every recorded channel of it is served.
        for stream in streams:
            symbol = stream.partition("@")[0].upper()
            if symbol and add:
                client.symbols.add(symbol)
            elif symbol:
                client.symbols.discard(symbol)

    def rest(self, method: str, path: str, query: Mapping[str, str]) -> bytes | None:
        """Return a `/api/v3/depth` (or `/fapi`, `/dapi`) body from the mirror, and an
        `exchangeInfo` of the served instruments when the recording holds none."""
        venue = self.server.mirror.venue
        spec = binance.VENUES[venue]
        if path == binance.INSTRUMENTS_PATHS[venue] and self.server.recorded_body(path) is None:
            return exchange_info(self.server.instruments, spec.futures)
        if path != spec.depth_path:
            return None
        book = self.valid_book(query.get("symbol", ""))
        if book is None:
            raise NotReady
        limit = int(query.get("limit", "100"))
        body: dict[str, Any] = {"lastUpdateId": book.last_seq}
        if spec.futures:
            ms = book.last_message_ns // 1_000_000
            body |= {"E": ms, "T": ms}
        body |= {"bids": _pairs(book, 1, limit), "asks": _pairs(book, -1, limit)}
        return orjson.dumps(body)


def exchange_info(instruments: list[Instrument], futures: bool) -> bytes:
    """Return a Binance `exchangeInfo` body describing `instruments` (what
    `binance.parse_instruments` reads), for recordings that carry no instrument list."""
    rows = []
    for inst in instruments:
        tick, lot = inst.tick_size, inst.lot_size
        row: dict[str, Any] = {
            "symbol": inst.venue_symbol, "baseAsset": inst.base, "quoteAsset": inst.quote,
            "filters": [{"filterType": "PRICE_FILTER", "tickSize": str(tick)},
                        {"filterType": "LOT_SIZE", "stepSize": str(lot)},
                        {"filterType": "NOTIONAL", "minNotional": str(inst.min_notional)}],
        }
        if futures:
            row |= {"status": "TRADING", "contractStatus": "TRADING",
                    "contractType": "PERPETUAL" if inst.id.symbol.endswith("-PERP")
                    else "CURRENT_QUARTER", "pricePrecision": inst.price_decimals,
                    "quantityPrecision": inst.size_decimals,
                    "contractSize": int(inst.contract_size)
                    if inst.contract_size == inst.contract_size.to_integral_value()
                    else str(inst.contract_size)}
        else:
            row |= {"status": "TRADING", "quotePrecision": inst.price_decimals}
        rows.append(row)
    return orjson.dumps({"symbols": rows})


def _bybit_key(topic: str) -> str:
    # `orderbook.{depth}.{symbol}` -> `orderbook.{symbol}`: one book whatever depth is asked.
    channel, _, rest = topic.partition(".")
    return f"{channel}.{rest.rpartition('.')[2]}"


class BybitProtocol(BaseProtocol):
    """Bybit v5 public: `op: subscribe` acked, `op: ping` ponged, every orderbook
    (re)subscription answered with a snapshot of the mirror's book."""

    CONN_ID = "replay-server"

    def frame_key(self, frame: bytes) -> str | None:
        """Return the subscription of a topic frame (depth left out)."""
        topic = _text_after(frame, b'"topic":"', 64)
        return _bybit_key(topic) if topic is not None else None

    def on_message(self, text: str, client: Client) -> list[str]:
        """Ack (un)subscriptions, answer pings, send book snapshots on subscribe."""
        msg = orjson.loads(text)
        op, req_id = msg.get("op"), msg.get("req_id", "")
        if op == "ping":
            return [self._reply(op, req_id, True, "pong")]
        if op not in ("subscribe", "unsubscribe"):
            return [self._reply(str(op), req_id, False, f"Invalid op: {op}")]
        out = [self._reply(op, req_id, True, "")]
        for topic in msg.get("args") or []:
            key = _bybit_key(str(topic))
            if op == "unsubscribe":
                client.symbols.discard(key)
                continue
            client.symbols.add(key)
            if key.startswith("orderbook."):
                snapshot = self._snapshot(str(topic), key.partition(".")[2])
                if snapshot is not None:
                    out.append(snapshot)
        return out

    def _reply(self, op: str, req_id: str, success: bool, ret_msg: str) -> str:
        return orjson.dumps({"success": success, "ret_msg": ret_msg, "conn_id": self.CONN_ID,
                             "req_id": req_id, "op": op}).decode()

    def _snapshot(self, topic: str, symbol: str) -> str | None:
        book = self.valid_book(symbol)
        if book is None:
            return None
        depth_text = topic.split(".")[1] if topic.count(".") == 2 else ""
        depth = int(depth_text) if depth_text.isdigit() else 1_000_000
        ms = book.last_message_ns // 1_000_000
        return orjson.dumps({
            "topic": topic, "type": "snapshot", "ts": ms,
            "data": {"s": symbol, "b": _pairs(book, 1, depth), "a": _pairs(book, -1, depth),
                     "u": book.last_seq, "seq": book.last_seq},
            "cts": ms}).decode()


class KucoinProtocol(BaseProtocol):
    """KuCoin: `POST /api/v1/bullet-public` grants this server's websocket, a token and
    `pingInterval`; `welcome` on connect, `ack`, ping/pong; REST level2 from the mirror."""

    TOKEN = "replay-server-token"  # noqa: S105 - a public connect token, not a secret
    SNAPSHOT_DEPTH = 100  # the public partial book (`level2_100`)

    def __init__(self, server: ReplayServer) -> None:
        super().__init__(server)
        self.ping_interval_ms = 18_000
        self.pings = 0
        self.bullets = 0

    def on_connect(self, client: Client) -> list[str]:
        """Greet the connection with `welcome` (its `connectId`)."""
        return [orjson.dumps({"id": client.query.get("connectId", ""),
                              "type": "welcome"}).decode()]

    def frame_key(self, frame: bytes) -> str | None:
        """Return the topic of a data frame (`/market/level2:BTC-USDT`)."""
        return _text_after(frame, b'"topic":"')

    def on_message(self, text: str, client: Client) -> list[str]:
        """Answer pings; (un)subscribe each `channel:symbol` of a topic, acked on request."""
        msg = orjson.loads(text)
        kind, msg_id = msg.get("type"), msg.get("id")
        if kind == "ping":
            self.pings += 1
            return [orjson.dumps({"id": msg_id, "type": "pong"}).decode()]
        if kind not in ("subscribe", "unsubscribe"):
            return [orjson.dumps({"id": msg_id, "type": "error", "code": 404,
                                  "data": f"unknown type {kind}"}).decode()]
        channel, _, symbols = str(msg.get("topic", "")).partition(":")
        keys = {f"{channel}:{s}" for s in symbols.split(",") if s}
        if kind == "subscribe":
            client.symbols |= keys
        else:
            client.symbols -= keys
        return [orjson.dumps({"id": msg_id, "type": "ack"}).decode()] if msg.get("response") \
            else []

    def rest(self, method: str, path: str, query: Mapping[str, str]) -> bytes | None:
        """Answer bullet-public, the level2 snapshot and the (v1 or v2) symbol list."""
        if path == kucoin.BULLET_PATH and method == "POST":
            self.bullets += 1
            server = {"endpoint": self.server.ws_url, "encrypt": False, "protocol": "websocket",
                      "pingInterval": self.ping_interval_ms, "pingTimeout": 10_000}
            return orjson.dumps({"code": "200000", "data": {"token": self.TOKEN,
                                                            "instanceServers": [server]}})
        if path == kucoin.INSTRUMENTS_PATH:
            return self.server.recorded_body("/api/v1/symbols")
        if path != kucoin.SNAPSHOT_PATH:
            return None
        book = self.valid_book(query.get("symbol", ""))
        if book is None:
            raise NotReady
        depth = self.SNAPSHOT_DEPTH
        return orjson.dumps({"code": "200000", "data": {
            "time": book.last_message_ns // 1_000_000, "sequence": str(book.last_seq),
            "bids": _pairs(book, 1, depth), "asks": _pairs(book, -1, depth)}})


class CoinbaseProtocol(BaseProtocol):
    """Coinbase Advanced Trade (`coinbase`: one `subscribe` per channel, every message in the
    connection's `sequence_num` envelope, a `snapshot` event on each level2 (re)subscription)
    and the Exchange feed (`coinbase_exchange`: `subscriptions` reply, `snapshot` frames)."""

    BOOK_CHANNELS = ("level2", "level2_batch", "l2_data")

    def __init__(self, server: ReplayServer) -> None:
        super().__init__(server)
        self.advanced = coinbase.VENUES[server.mirror.venue].advanced

    def frame_key(self, frame: bytes) -> str | None:
        """Return the product of a book frame (others go to every client)."""
        head = frame[:40]
        if (b'"l2_data"' in head if self.advanced
                else b'"l2update"' in head or b'"snapshot"' in head):
            return _text_after(frame, b'"product_id":"')
        return None

    def render(self, text: str, client: Client) -> str:
        """Number Advanced Trade messages per connection, as the venue does."""
        if not self.advanced:
            return text
        doc = orjson.loads(text)
        doc["sequence_num"] = client.next_sequence()
        return orjson.dumps(doc).decode()

    def on_message(self, text: str, client: Client) -> list[str]:
        """Answer (un)subscriptions; a level2 subscription gets each book's snapshot."""
        msg = orjson.loads(text)
        op = msg.get("type")
        if op not in ("subscribe", "unsubscribe"):
            return [self._envelope("error", message=f"unknown type {op}")]
        products = [str(p) for p in msg.get("product_ids") or []]
        channels = [msg.get("channel")] if self.advanced else \
            [c if isinstance(c, str) else c.get("name") for c in msg.get("channels") or []]
        books = any(c in self.BOOK_CHANNELS for c in channels)
        out = []
        if books and op == "unsubscribe":
            client.symbols.difference_update(products)
        elif books:
            client.symbols.update(products)
            out += [s for s in map(self._snapshot, products) if s is not None]
        subs = {str(c): products for c in channels}
        if self.advanced:
            return [self._envelope("subscriptions", events=[{"subscriptions": subs}]), *out]
        return [orjson.dumps({"type": "subscriptions", "channels": [
            {"name": c, "product_ids": p} for c, p in subs.items()]}).decode(), *out]

    def _envelope(self, channel: str, **fields: Any) -> str:
        if not self.advanced:
            return orjson.dumps({"type": channel, **fields}).decode()
        return orjson.dumps({"channel": channel, "client_id": "",
                             "timestamp": rfc3339(self.server.clock.now_ns()),
                             "sequence_num": 0, **fields}).decode()

    def _snapshot(self, product: str) -> str | None:
        book = self.valid_book(product)
        if book is None:
            return None
        if not self.advanced:
            return orjson.dumps({"type": "snapshot", "product_id": product,
                                 "bids": _pairs(book, 1), "asks": _pairs(book, -1)}).decode()
        when = rfc3339(book.last_message_ns)
        updates = [{"side": side, "event_time": when, "price_level": p, "new_quantity": s}
                   for side, sign in (("bid", 1), ("offer", -1)) for p, s in _pairs(book, sign)]
        return orjson.dumps({"channel": "l2_data", "client_id": "", "timestamp": when,
                             "sequence_num": 0, "events": [
                                 {"type": "snapshot", "product_id": product,
                                  "updates": updates}]}).decode()


PROTOCOLS: dict[str, type] = {"kraken": KrakenV1Protocol, "okx": OkxProtocol}
PROTOCOLS.update({venue: BinanceProtocol for venue in binance.VENUES})
PROTOCOLS.update({venue: BybitProtocol for venue in bybit.VENUES})
PROTOCOLS.update({venue: KucoinProtocol for venue in kucoin.VENUES})
PROTOCOLS.update({venue: CoinbaseProtocol for venue in coinbase.VENUES})


class ReplayServer:
    """Play one recording to websocket clients and answer REST on 127.0.0.1."""

    def __init__(self, recording: Recording, instruments: list[Instrument] | None = None,
                 frames_per_second: float = 0.0, speed: float = 0.0,
                 host: str = "127.0.0.1") -> None:
        if recording.venue not in PROTOCOLS:
            raise DataError(f"no replay-server protocol for {recording.venue!r} "
                            f"(have: {', '.join(sorted(PROTOCOLS))})")
        self.recording = recording
        self.host = host
        self.frames_per_second = frames_per_second
        self.speed = speed
        self.instruments = instruments or recording.instruments
        self.clock = SimClock()
        self.mirror: Feed = build_feed(recording.venue, self.instruments, Bus(), self.clock)
        self.protocol: Any = PROTOCOLS[recording.venue](self)
        self.clients: list[Client] = []
        self.silent = False
        self.sent = 0
        self.played = 0
        self.connections = 0
        self.done = asyncio.Event()
        self._started = asyncio.Event()
        self._rest_bodies = self._instrument_bodies()
        self._ws: Any = None
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.ws_port = 0
        self.http_port = 0

    def instrument(self, venue_symbol: str) -> Instrument | None:
        """Return the served instrument with this venue symbol."""
        return next((i for i in self.instruments if i.venue_symbol == venue_symbol), None)

    @property
    def ws_url(self) -> str:
        """Return the websocket URL clients connect to."""
        return f"ws://{self.host}:{self.ws_port}/"

    @property
    def rest_url(self) -> str:
        """Return the base URL of the REST endpoints."""
        return f"http://{self.host}:{self.http_port}"

    async def start(self, ws_port: int = 0, http_port: int = 0) -> None:
        """Listen on the websocket and HTTP ports (0: any free port); start the timeline."""
        self._ws = await serve(self._client, self.host, ws_port, max_size=2**24,
                               ping_interval=None)
        self.ws_port = self._ws.sockets[0].getsockname()[1]
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._rest)
        app.router.add_post("/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, http_port)
        await site.start()
        self.http_port = self._runner.addresses[0][1]
        self._task = asyncio.get_running_loop().create_task(self._play(), name="replay-server")
        log.info("replay_server_started", venue=self.recording.venue, ws=self.ws_url,
                 rest=self.rest_url)

    async def stop(self) -> None:
        """Close every connection and both servers."""
        if self._task is not None:
            self._task.cancel()
        if self._ws is not None:
            self._ws.close()
            await self._ws.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    def drop_connections(self) -> int:
        """Cut every client connection without a close handshake; return how many."""
        dropped = 0
        for client in list(self.clients):
            transport = client.ws.transport
            if transport is not None:
                transport.abort()
                dropped += 1
        return dropped

    # --- timeline ----------------------------------------------------------------------

    def _timeline(self) -> Iterator[Entry]:
        rec = self.recording
        if rec.framing != "hftbacktest":
            yield from read_entries(rec.path, rec.framing)
            return
        for ts, payload in read_lines(rec.path):
            kind = "rest" if payload.startswith(_SNAPSHOT_PREFIX) else "frame"
            yield Entry(ts, kind, "", payload)

    async def _play(self) -> None:
        await self._started.wait()
        start, first_ts = monotonic(), None
        for n, entry in enumerate(self._timeline()):
            first_ts = entry.ts if first_ts is None else first_ts
            await self._pace(n, entry.ts - first_ts, start)
            self.clock.advance_to(entry.ts)
            if entry.kind == "frame":
                self.mirror.on_frame(entry.payload, entry.ts)
                self.played += 1
                self._broadcast(entry.payload)
            elif entry.kind == "rest":
                self._mirror_rest(entry)
            elif entry.kind == "connect":
                self.mirror.reset_books("connect")
        self.done.set()
        log.info("replay_server_finished", frames=self.played, sent=self.sent)

    async def _pace(self, n: int, elapsed_ns: int, start: float) -> None:
        if self.frames_per_second > 0:
            due = start + n / self.frames_per_second
        elif self.speed > 0:
            due = start + elapsed_ns / 1e9 / self.speed
        else:
            if n % 256 == 0:
                await asyncio.sleep(0)
            return
        delay = due - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif n % 64 == 0:
            await asyncio.sleep(0)

    def _mirror_rest(self, entry: Entry) -> None:
        # A recorded REST snapshot: the mirror takes it as the recorded client did.
        feed = self.mirror
        if entry.url:
            if feed.is_instruments_url(feed.venue, entry.url):
                return
            inst = feed.instrument_for_url(entry.url)
        else:  # hftbacktest: the snapshot of the file's single depth stream
            symbols = self.recording.depth_symbols
            inst = self.instrument(symbols[0]) if len(symbols) == 1 else None
        if inst is None:
            return
        try:
            feed.on_snapshot(feed.parse_snapshot(entry.payload, inst, entry.ts))
        except DataError as exc:
            feed.parse_error("snapshot", exc, entry.payload)

    def _broadcast(self, frame: bytes) -> None:
        if self.silent or not self.clients:
            return
        protocol = self.protocol
        key = protocol.frame_key(frame)
        text = frame.decode()
        for client in self.clients:
            if key is None or key in client.symbols:
                self.sent += 1
                client.send(protocol.render(text, client))

    async def _writer(self, client: Client) -> None:
        try:
            while True:
                await client.ws.send(await client.queue.get())
        except websockets.ConnectionClosed:
            return

    # --- websocket ---------------------------------------------------------------------

    async def _client(self, ws: ServerConnection) -> None:
        client = Client(ws)
        self.clients.append(client)
        self.connections += 1
        writer = asyncio.get_running_loop().create_task(self._writer(client),
                                                        name="replay-server:writer")
        protocol = self.protocol
        if not self.silent:
            for reply in protocol.on_connect(client):
                client.send(protocol.render(reply, client))
        if protocol.subscribes_by_url:
            self._started.set()
        try:
            async for message in ws:
                if self.silent:
                    continue
                text = message if isinstance(message, str) else message.decode()
                try:
                    replies = protocol.on_message(text, client)
                except (ValueError, TypeError, AttributeError, KeyError) as exc:
                    replies = [orjson.dumps({"event": "error", "msg": str(exc)}).decode()]
                for reply in replies:
                    client.send(protocol.render(reply, client))
                self._started.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            writer.cancel()
            self.clients.remove(client)

    # --- REST --------------------------------------------------------------------------

    def _instrument_bodies(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], bytes]:
        rec = self.recording
        entries = [e for e in self._timeline() if e.kind == "rest"] if rec.framing == \
            "tradebot" else []
        listing = rec.path.with_name(rec.path.name.split(".")[0] + ".0")
        if rec.framing == "cryptofeed" and listing.exists():
            entries += read_rest_lines(listing)
        return {_route(e.url): e.payload for e in entries}

    def recorded_body(self, path: str, query: tuple[tuple[str, str], ...] = ()) -> bytes | None:
        """Return the recorded REST body of a path and sorted query (instrument lists)."""
        return self._rest_bodies.get((path, query))

    async def _rest(self, request: web.Request) -> web.Response:
        # A silent server hangs its REST answers too, until it speaks again (30 s at most).
        for _ in range(600):
            if not self.silent:
                break
            await asyncio.sleep(0.05)
        try:
            body = self.protocol.rest(request.method, request.path, request.query)
        except NotReady:
            return web.Response(status=503, text="book not synced yet")
        if body is None:
            body = self.recorded_body(request.path, tuple(sorted(request.query.items())))
        if body is None:
            return web.Response(status=404, text="not in this recording")
        return web.Response(body=body, content_type="application/json")


def _route(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query)))


async def serve_recording(recording: Recording, instruments: list[Instrument], host: str,
                          ws_port: int, http_port: int, speed: float, frames_per_second: float,
                          stop: asyncio.Event) -> int:
    """Run a replay server until `stop` is set; return the frames played."""
    server = ReplayServer(recording, instruments=instruments,
                          frames_per_second=frames_per_second, speed=speed, host=host)
    await server.start(ws_port, http_port)
    print(f"serving {recording.path.name} ({recording.venue}): websocket {server.ws_url}, "
          f"REST {server.rest_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return server.played
