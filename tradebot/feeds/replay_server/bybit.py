"""Bybit v5 public websocket, served from the mirror."""

from __future__ import annotations

import orjson

from tradebot.feeds import bybit
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    pairs,
    text_after,
)


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
        topic = text_after(frame, b'"topic":"', 64)
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
            "data": {"s": symbol, "b": pairs(book, 1, depth), "a": pairs(book, -1, depth),
                     "u": book.last_seq, "seq": book.last_seq},
            "cts": ms}).decode()


PROTOCOLS.update({venue: BybitProtocol for venue in bybit.VENUES})
