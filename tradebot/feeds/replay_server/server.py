"""The replay server's core: the server, a connected client, the base protocol and what the
venue protocols share (rendering a book's levels, finding a frame's topic)."""

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
from tradebot.feeds.base import Feed
from tradebot.feeds.lines import Damage
from tradebot.feeds.recorded import is_instrument_list, snapshot_instrument
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import (
    REPLAY_DAMAGED,
    Entry,
    Recording,
    read_entries,
    read_lines,
    read_rest_lines,
)
from tradebot.feeds.sync import BookSync

# Named after the package, as the one module was: log lines keep their `logger` field.
log = structlog.get_logger(__package__)

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


def levels(book: BookSync, side: int) -> list[tuple[int, int]]:
    """Return every level of a side (1 bids, -1 asks) as (price, size) units, best first."""
    inst = book.instrument
    return [(int(p.scaleb(inst.price_decimals)), int(s.scaleb(inst.size_decimals)))
            for p, s in book.book.levels(side, 1_000_000)]


def text_after(frame: bytes, key: bytes, limit: int = -1) -> str | None:
    """Return the string value that follows `key` (`"topic":"`), within the first `limit`
    bytes."""
    start = frame.find(key, 0, limit if limit > 0 else len(frame))
    if start < 0:
        return None
    start += len(key)
    end = frame.find(b'"', start)
    return frame[start:end].decode() if end > start else None


def pairs(book: BookSync, side: int, depth: int = 1_000_000) -> list[list[str]]:
    """Return the best `depth` levels of a side as shortest decimal strings, `[price, size]`."""
    inst = book.instrument
    return [[canonical(p, inst.price_decimals), canonical(s, inst.size_decimals)]
            for p, s in levels(book, side)[:depth]]


class NotReady(Exception):
    """A REST endpoint the mirror answers, asked before the mirror's book is synced."""


def rfc3339(ns: int) -> str:
    """Render ns since the epoch as RFC 3339 UTC with 9 decimals (Coinbase's `timestamp`)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


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


# Venue -> protocol class; each venue module of this package adds its own venues.
PROTOCOLS: dict[str, type] = {}


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
        log.info("replay_server_started", file=str(self.recording.path),
                 venue=self.recording.venue, ws=self.ws_url, rest=self.rest_url)

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

    def _timeline(self, damaged: list[Damage]) -> Iterator[Entry]:
        rec = self.recording
        if rec.framing != "hftbacktest":
            yield from read_entries(rec.path, rec.framing, damaged)
            return
        for ts, payload in read_lines(rec.path, damaged=damaged):
            kind = "rest" if payload.startswith(_SNAPSHOT_PREFIX) else "frame"
            yield Entry(ts, kind, "", payload)

    async def _play(self) -> None:
        await self._started.wait()
        start, first_ts = monotonic(), None
        damaged: list[Damage] = []
        for n, entry in enumerate(self._timeline(damaged)):
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
        for damage in damaged:  # served up to the damage, as a replay plays it
            REPLAY_DAMAGED.inc()
            log.error("recording_damaged", file=damage.file, offset=damage.offset,
                      error=damage.error)
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
            if is_instrument_list(feed.venue, entry.url):
                return
            inst = snapshot_instrument(entry.url, feed.instruments.values())
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
        # Damage is reported where the timeline plays; the lists before it serve.
        entries = [e for e in self._timeline([]) if e.kind == "rest"] if rec.framing == \
            "tradebot" else []
        listing = rec.path.with_name(rec.path.name.split(".")[0] + ".0")
        if rec.framing == "cryptofeed" and listing.exists():
            entries += read_rest_lines(listing, [])
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
    try:
        await stop.wait()
    finally:
        await server.stop()
    return server.played
