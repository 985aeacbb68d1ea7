"""KuCoin: bullet-public, welcome, acks and pings, and the level2 REST snapshot, served
from the mirror."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from tradebot.feeds import kucoin
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    NotReady,
    ReplayServer,
    pairs,
    text_after,
)


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
        return text_after(frame, b'"topic":"')

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
            "bids": pairs(book, 1, depth), "asks": pairs(book, -1, depth)}})


PROTOCOLS.update({venue: KucoinProtocol for venue in kucoin.VENUES})
