"""OKX v5 public websocket and the `/api/v5/market/books` REST snapshot, served from the
mirror."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tradebot.errors import DataError
from tradebot.feeds import okx
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    canonical,
    levels,
)
from tradebot.feeds.sync import BookSync


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
                   "1"] for p, s in levels(book, sign)]
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


PROTOCOLS.update({venue: OkxProtocol for venue in okx.VENUES})
