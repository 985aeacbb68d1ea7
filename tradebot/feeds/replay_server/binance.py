"""Binance combined streams (spot, USD-M, COIN-M), the REST depth snapshot and
`exchangeInfo`, served from the mirror."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tradebot.domain import Instrument
from tradebot.feeds import binance
from tradebot.feeds.replay_server.server import (
    PROTOCOLS,
    BaseProtocol,
    Client,
    NotReady,
    pairs,
)


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
        body |= {"bids": pairs(book, 1, limit), "asks": pairs(book, -1, limit)}
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


PROTOCOLS.update({venue: BinanceProtocol for venue in binance.VENUES})
