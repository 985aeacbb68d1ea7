"""Kraken websocket v1 (the recorded protocol), served from the mirror."""

from __future__ import annotations

import orjson

from tradebot.errors import DataError
from tradebot.feeds import kraken
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    ReplayServer,
    fixed,
    levels,
)


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
                         for p, s in levels(book, sign)[:depth]]
        return orjson.dumps([cid, side, channel, pair]).decode()


PROTOCOLS.update({venue: KrakenV1Protocol for venue in kraken.VENUES})
