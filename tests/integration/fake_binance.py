"""A local stand-in for Binance USD-M: recorded frames over a real websocket, a REST depth
snapshot that is current at request time, and knobs to drop or silence the connection.

The server keeps its own book (a plain dict, independent of tradebot's kernels) by applying
the recorded diffs it has sent, so its snapshot is what the venue's would be at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import websockets
from aiohttp import web


@dataclass
class Script:
    """How the server behaves on each connection."""

    drop_after: list[int] = field(default_factory=list)  # frames sent before closing, per conn
    skip_while_down: int = 0  # frames the client misses while disconnected
    frames_per_second: float = 3000.0
    silent_after: int | None = None  # stop sending (but keep the socket open) after N frames


class FakeBinance:
    def __init__(self, recording: Path, limit: int, script: Script) -> None:
        self.script = script
        self.frames: list[bytes] = []
        snapshot: dict[str, Any] | None = None
        with gzip.open(recording, "rb") as fh:
            for line in fh:
                payload = line.split(b" ", 1)[1].rstrip(b"\n")
                if payload.startswith(b'{"lastUpdateId"'):
                    snapshot = orjson.loads(payload)
                elif snapshot is not None:
                    self.frames.append(payload)
                if len(self.frames) >= limit:
                    break
        assert snapshot is not None
        self.bids = {Decimal(p): Decimal(q) for p, q in snapshot["bids"]}
        self.asks = {Decimal(p): Decimal(q) for p, q in snapshot["asks"]}
        self.last_u = int(snapshot["lastUpdateId"])
        self.sent = 0
        self.connections = 0
        self.snapshots_served = 0
        self.done = asyncio.Event()
        self._ws_server: Any = None
        self._runner: web.AppRunner | None = None
        self.ws_port = 0
        self.http_port = 0

    def _apply(self, frame: bytes) -> None:
        data = orjson.loads(frame)["data"]
        if data.get("e") != "depthUpdate" or int(data["u"]) < self.last_u:
            return
        for book, key in ((self.bids, "b"), (self.asks, "a")):
            for p, q in data[key]:
                if Decimal(q) == 0:
                    book.pop(Decimal(p), None)
                else:
                    book[Decimal(p)] = Decimal(q)
        self.last_u = int(data["u"])

    async def _handler(self, ws: Any) -> None:
        self.connections += 1
        conn = self.connections
        drop_after = (self.script.drop_after[conn - 1]
                      if conn - 1 < len(self.script.drop_after) else None)
        if conn > 1:
            for _ in range(self.script.skip_while_down):  # the venue moved on meanwhile
                if self.sent < len(self.frames):
                    self._apply(self.frames[self.sent])
                    self.sent += 1
        count = 0
        delay = 1.0 / self.script.frames_per_second
        while self.sent < len(self.frames):
            if drop_after is not None and count >= drop_after:
                await ws.close()
                return
            if self.script.silent_after is not None and count >= self.script.silent_after:
                await ws.wait_closed()  # silent, but the socket stays open until the client goes
                return
            frame = self.frames[self.sent]
            self._apply(frame)
            self.sent += 1
            count += 1
            try:
                await ws.send(frame.decode())
            except websockets.ConnectionClosed:
                return  # the client went away; the next connection continues the stream
            await asyncio.sleep(delay)
        self.done.set()
        await ws.wait_closed()

    async def _depth(self, request: web.Request) -> web.Response:
        self.snapshots_served += 1
        body = {
            "lastUpdateId": self.last_u, "E": 1, "T": 1,
            "bids": [[str(p), str(q)] for p, q in sorted(self.bids.items(), reverse=True)],
            "asks": [[str(p), str(q)] for p, q in sorted(self.asks.items())],
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    def book(self) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        return dict(self.bids), dict(self.asks)

    async def start(self) -> None:
        self._ws_server = await websockets.serve(self._handler, "127.0.0.1", 0)
        self.ws_port = self._ws_server.sockets[0].getsockname()[1]
        app = web.Application()
        app.router.add_get("/fapi/v1/depth", self._depth)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._ws_server is not None:
            self._ws_server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 5)
        if self._runner is not None:
            await self._runner.cleanup()


def daemon_config(path: Path, fake: FakeBinance, state: Path, port: int,
                  extra_state: str = "") -> Path:
    """Write a daemon config following `fake` (JSON logs, state in `state`) to `path`."""
    path.write_text(f"""
[log]
format = "json"
[state]
dir = "{state}"
equity_interval_s = 0.5
{extra_state}
[server]
port = {port}
[[feeds]]
venue = "binance_usdm"
symbols = ["BTC-USDT-PERP"]
ws_url = "ws://127.0.0.1:{fake.ws_port}/stream"
rest_url = "http://127.0.0.1:{fake.http_port}"
backoff_initial_s = 0.05
backoff_max_s = 0.2
""")
    return path
