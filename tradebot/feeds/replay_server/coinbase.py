"""Coinbase Advanced Trade and Exchange websockets, served from the mirror."""

from __future__ import annotations

from typing import Any

import orjson

from tradebot.feeds import coinbase
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    ReplayServer,
    pairs,
    rfc3339,
    text_after,
)


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
            return text_after(frame, b'"product_id":"')
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
                                 "bids": pairs(book, 1), "asks": pairs(book, -1)}).decode()
        when = rfc3339(book.last_message_ns)
        updates = [{"side": side, "event_time": when, "price_level": p, "new_quantity": s}
                   for side, sign in (("bid", 1), ("offer", -1)) for p, s in pairs(book, sign)]
        return orjson.dumps({"channel": "l2_data", "client_id": "", "timestamp": when,
                             "sequence_num": 0, "events": [
                                 {"type": "snapshot", "product_id": product,
                                  "updates": updates}]}).decode()


PROTOCOLS.update({venue: CoinbaseProtocol for venue in coinbase.VENUES})
