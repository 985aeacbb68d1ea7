"""Serve a recording over a real websocket and HTTP on 127.0.0.1, in the venue's own protocol.

The server plays the recording on one shared timeline, as a venue would: clients that connect
late or reconnect miss what passed meanwhile. A mirror of the venue's own Feed follows the
timeline, so the server always knows each book; a (re)subscription gets a snapshot rendered
from the mirror in the venue's format, and the REST depth endpoint serves one. The daemon's
live code path (FeedRunner, the venue Feed) therefore runs end to end offline, and its books at
the end of the recording equal a clean replay's. Faults for tests: `drop_connections()` cuts
every connection mid-stream; `silent` stops all traffic (frames, acks and pongs).

A venue's server side is a `VenueProtocol`: acks, pongs, which instrument a frame belongs to,
and snapshot rendering. Kraken (v1, the recorded protocol) and OKX are here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
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
from tradebot.feeds import kraken, okx
from tradebot.feeds.base import Feed
from tradebot.feeds.book import BookSync
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import (
    Entry,
    Recording,
    inspect,
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
    """The server side of a venue's public websocket."""

    def on_message(self, text: str, client: Client) -> list[str]:
        """Answer a client message (acks, pongs, snapshots); update its subscriptions."""

    def frame_symbol(self, frame: bytes) -> str | None:
        """Return the venue symbol a frame belongs to (None: not instrument data)."""


CLIENT_QUEUE = 100_000  # frames queued for one client; a venue drops a slower consumer


@dataclass(slots=True)
class Client:
    """One connected websocket client, what it subscribed, and its outgoing frames in order."""

    ws: ServerConnection
    symbols: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(CLIENT_QUEUE))

    def send(self, text: str) -> None:
        """Queue a frame; a client too slow to keep up is disconnected."""
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            if self.ws.transport is not None:
                self.ws.transport.abort()


class KrakenV1Protocol:
    """Kraken websocket v1: `{"event":"subscribe","pair":[...],"subscription":{...}}`."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.channel_ids: dict[str, int] = {}

    def frame_symbol(self, frame: bytes) -> str | None:
        """Return the pair of a channel frame."""
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


class OkxProtocol:
    """OKX v5 public: `{"op":"subscribe","args":[{"channel":..,"instId":..}]}`, text ping."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server

    def frame_symbol(self, frame: bytes) -> str | None:
        """Return the instId of a push frame."""
        if not frame.startswith(b'{"arg":'):
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

    def rest_book(self, inst_id: str) -> bytes | None:
        """Return a REST `/api/v5/market/books` body (only where the stream has seqIds)."""
        book = self._book(inst_id)
        if book is None or book.last_seq == -1:
            return None
        return orjson.dumps({"code": "0", "msg": "", "data": [self.book_data(book)]})


PROTOCOLS: dict[str, type] = {"kraken": KrakenV1Protocol, "okx": OkxProtocol}


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

    def _broadcast(self, frame: bytes) -> None:
        if self.silent or not self.clients:
            return
        symbol = self.protocol.frame_symbol(frame)
        text = frame.decode()
        for client in self.clients:
            if symbol is None or symbol in client.symbols or not self._is_book(frame):
                self.sent += 1
                client.send(text)

    def _is_book(self, frame: bytes) -> bool:
        return b'"books"' in frame[:60] or (frame.startswith(b"[") and
                                            b'"book-' in frame[-60:])

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
        try:
            async for message in ws:
                if self.silent:
                    continue
                text = message if isinstance(message, str) else message.decode()
                try:
                    replies = self.protocol.on_message(text, client)
                except (ValueError, TypeError, AttributeError, KeyError) as exc:
                    replies = [orjson.dumps({"event": "error", "msg": str(exc)}).decode()]
                for reply in replies:
                    client.send(reply)
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

    async def _rest(self, request: web.Request) -> web.Response:
        if self.silent:
            await asyncio.sleep(30)
        key = (request.path, tuple(sorted(request.query.items())))
        body = self._rest_bodies.get(key)
        if body is None and isinstance(self.protocol, OkxProtocol) and \
                request.path == okx.BOOKS_PATH:
            body = self.protocol.rest_book(request.query.get("instId", ""))
        if body is None:
            return web.Response(status=404, text="not in this recording")
        return web.Response(body=body, content_type="application/json")


def _route(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = urlsplit(url)
    return parts.path, tuple(sorted(parse_qsl(parts.query)))


async def serve_recording(path: Path, venue: str | None, host: str, ws_port: int,
                          http_port: int, speed: float, frames_per_second: float,
                          stop: asyncio.Event) -> int:
    """Run a replay server until `stop` is set; return the frames played."""
    server = ReplayServer(inspect(path, venue), frames_per_second=frames_per_second,
                          speed=speed, host=host)
    await server.start(ws_port, http_port)
    print(f"serving {path.name} ({server.recording.venue}): websocket {server.ws_url}, "
          f"REST {server.rest_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
    return server.played
