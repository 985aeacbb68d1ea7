"""Coinbase public market data: Advanced Trade (`coinbase`) and the Exchange feed
(`coinbase_exchange`, the old Pro feed the recorded sessions come from).

Advanced Trade (../shared/EXCHANGES.md §2): every message on a connection carries the
envelope's `sequence_num`, one counter for all channels. `level2` arrives as `l2_data` events,
a `snapshot` then `update`s whose `new_quantity` is absolute ("0" removes the level). A skipped
(or repeated) `sequence_num` means a message was lost and nobody can tell for which product,
so every book is invalid until the venue resends it on a resubscribe. `heartbeats` keeps quiet
connections open. No REST snapshot carries a sequence, so books are never bridged from REST.

Exchange: `snapshot` + `l2update` (`changes: [[side, price, size]]`) carry no sequence; within
one connection they are applied in order, and a resubscribe resends the snapshot.

Books use the connection's sequence: a delta's `prev` is the first sequence of the unbroken
stretch it belongs to, so it applies only when that stretch began at or before the book's last
applied message (`CoinbaseRule`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np
import orjson

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.core.jsonscan import key_code, scan_object
from tradebot.core.levels import first_invalid_level
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, Quote, Trade
from tradebot.feeds.base import Feed
from tradebot.feeds.parsing import decode, finite
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Api:
    """Endpoints and channel names of one Coinbase API (Advanced Trade or Exchange)."""

    ws_url: str
    rest_url: str
    products_path: str
    advanced: bool
    channels: tuple[str, ...]

    @property
    def products_url(self) -> str:
        """Return the public product list URL."""
        return self.rest_url + self.products_path


VENUES = {
    "coinbase": Api(
        "wss://advanced-trade-ws.coinbase.com", "https://api.coinbase.com",
        "/api/v3/brokerage/market/products?product_type=SPOT",
        advanced=True, channels=("level2", "market_trades", "ticker")),
    "coinbase_exchange": Api(
        "wss://ws-feed.exchange.coinbase.com", "https://api.exchange.coinbase.com", "/products",
        advanced=False, channels=("level2_batch", "matches", "ticker", "heartbeat")),
}
# Book sizes are sent with 8 decimals whatever the product's order increment.
BOOK_SIZE_DECIMALS = 8

_BIDS, _ASKS = key_code("bids"), key_code("asks")
_NO_CODES = np.empty(0, np.int64)
_EMPTY = np.empty((0, 3), np.int64)
_SIDES = {"bid": 1, "buy": 1, "offer": -1, "ask": -1, "sell": -1}


class CoinbaseRule:
    """Connection-sequence rule: `prev` is where the delta's unbroken stretch began."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot."""
        if last <= snapshot_seq:
            return "drop"
        return "apply" if prev <= snapshot_seq else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after an applied one: nothing may have been lost since then."""
        return "apply" if prev <= last_applied < first else "gap"


# --- symbols and instruments -------------------------------------------------------------


def parse_instruments(body: bytes, venue: str) -> list[Instrument]:
    """Parse Advanced Trade `market/products` or Exchange `/products` into spot instruments."""
    try:
        return _parse_instruments(body, venue)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"malformed instruments body: {exc!r}") from None


def _parse_instruments(body: bytes, venue: str) -> list[Instrument]:
    doc = orjson.loads(body)
    rows = doc.get("products") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise DataError("products body has no product list")
    out = []
    for row in rows:
        if "product_id" in row:  # Advanced Trade
            if row.get("product_type") != "SPOT" or row.get("trading_disabled"):
                continue
            pid, base, quote = row["product_id"], row["base_currency_id"], row["quote_currency_id"]
            tick, min_notional = row["price_increment"], row.get("quote_min_size") or "0"
        else:  # Exchange
            if row.get("status") != "online" or row.get("trading_disabled"):
                continue
            pid, base, quote = row["id"], row["base_currency"], row["quote_currency"]
            tick, min_notional = row["quote_increment"], row.get("min_market_funds") or "0"
        out.append(Instrument(
            id=InstrumentId(f"{base}-{quote}", venue), venue_symbol=pid, kind=MarketKind.SPOT,
            base=base, quote=quote, tick_size=Decimal(tick),
            lot_size=Decimal(row["base_increment"]), min_notional=Decimal(min_notional),
            size_precision=BOOK_SIZE_DECIMALS,
        ))
    return out


# --- pure parsing ------------------------------------------------------------------------


def iso_ns(text: str) -> int:
    """Convert an RFC 3339 UTC time (`2023-02-09T20:32:50.714964855Z`) to ns since the epoch."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise DataError(f"time {text!r} is not RFC 3339 UTC")
    base, _, frac = text[:-1].partition(".")
    if frac and not (frac.isascii() and frac.isdigit()):
        raise DataError(f"time {text!r} has a malformed fraction")
    try:
        seconds = int(datetime.fromisoformat(base + "+00:00").timestamp())
    except ValueError:
        raise DataError(f"time {text!r} is not RFC 3339 UTC") from None
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


def to_units(text: str, decimals: int) -> int:
    """Convert a decimal string to integer units of 10**-decimals, exactly; DataError when it
    is negative, malformed or finer than `decimals`."""
    if not isinstance(text, str):
        raise DataError(f"{text!r} is not a decimal string")
    whole, _, frac = text.partition(".")
    if not (text.isascii() and whole.isdigit()) or (frac and not frac.isdigit()):
        raise DataError(f"{text!r} is not a non-negative decimal")
    if len(frac) > decimals:
        if frac[decimals:].strip("0"):
            raise DataError(f"{text!r} is finer than {decimals} decimals")
        frac = frac[:decimals]
    return int(whole) * 10**decimals + (int(frac.ljust(decimals, "0")) if decimals else 0)


def l2_levels(updates: list[dict], instrument: Instrument) -> np.ndarray:
    """Convert Advanced Trade `updates` ({side, price_level, new_quantity}) to levels."""
    px, sz = instrument.price_decimals, instrument.size_decimals
    rows = [(_SIDES[u["side"]], to_units(u["price_level"], px), to_units(u["new_quantity"], sz))
            for u in updates]
    return np.array(rows, np.int64).reshape(len(rows), 3)


def exchange_change_levels(changes: list[list[str]], instrument: Instrument) -> np.ndarray:
    """Convert Exchange `l2update` changes ([side, price, size]) to levels."""
    px, sz = instrument.price_decimals, instrument.size_decimals
    rows = [(_SIDES[side], to_units(price, px), to_units(size, sz))
            for side, price, size in changes]
    return np.array(rows, np.int64).reshape(len(rows), 3)


def snapshot_from_levels(levels: np.ndarray, instrument: Instrument, sequence: int,
                         ts_event: int, ts_init: int) -> BookSnapshot:
    """Build a BookSnapshot from (side, price, size) levels (zero sizes are dropped)."""
    rows = levels[levels[:, 2] > 0]
    return BookSnapshot(
        instrument=instrument.id,
        bids=np.ascontiguousarray(rows[rows[:, 0] == 1, 1:]),
        asks=np.ascontiguousarray(rows[rows[:, 0] == -1, 1:]),
        sequence=sequence, ts_event=ts_event, ts_init=ts_init,
    )


def scan_exchange_snapshot(frame: bytes, instrument: Instrument) -> np.ndarray:
    """Scan an Exchange `snapshot` frame's `bids`/`asks` into levels."""
    levels = np.empty((frame.count(b"[") + 1, 3), np.int64)
    n = scan_object(np.frombuffer(frame, np.uint8), 0, _NO_CODES, np.empty(0, np.int64), _BIDS,
                    _ASKS, instrument.price_decimals, instrument.size_decimals, levels)
    if n < 0:
        raise DataError(f"snapshot for {instrument.id} not scannable (code {n})")
    if first_invalid_level(levels, n) >= 0:
        raise DataError(f"snapshot for {instrument.id} has a negative price or size")
    return levels[:n]


def parse_market_trade(trade: dict, instrument: Instrument, ts_init: int) -> Trade:
    """Parse an Advanced Trade `market_trades` trade (`side` read as the taker's side)."""
    return Trade(instrument=instrument.id, price=finite(trade["price"]),
                 size=finite(trade["size"]), aggressor=_side(trade["side"]),
                 trade_id=str(trade["trade_id"]), ts_event=iso_ns(trade["time"]),
                 ts_init=ts_init)


def parse_match(doc: dict, instrument: Instrument, ts_init: int) -> Trade:
    """Parse an Exchange `match`/`last_match` (`side` is the maker's: the taker is opposite)."""
    return Trade(instrument=instrument.id, price=finite(doc["price"]), size=finite(doc["size"]),
                 aggressor=_side(doc["side"]).opposite, trade_id=str(doc["trade_id"]),
                 ts_event=iso_ns(doc["time"]), ts_init=ts_init)


def parse_ticker(ticker: dict, instrument: Instrument, ts_event: int, ts_init: int) -> Quote:
    """Parse an Advanced Trade ticker (or an Exchange ticker with sizes) into a Quote."""
    if not isinstance(ticker, dict):
        raise DataError("ticker is not an object")
    bid_size = ticker.get("best_bid_quantity", ticker.get("best_bid_size"))
    ask_size = ticker.get("best_ask_quantity", ticker.get("best_ask_size"))
    if bid_size is None or ask_size is None:
        raise DataError("ticker has no best bid/ask sizes")
    return Quote(instrument=instrument.id, bid_price=finite(ticker["best_bid"]),
                 bid_size=finite(bid_size), ask_price=finite(ticker["best_ask"]),
                 ask_size=finite(ask_size), ts_event=ts_event, ts_init=ts_init)


def _side(text: str) -> Side:
    side = _SIDES.get(text.lower()) if isinstance(text, str) else None
    if side is None:
        raise DataError(f"unknown side {text!r}")
    return Side(side)


def subscribe_messages(venue: str, product_ids: list[str], op: str = "subscribe",
                       channels: Sequence[str] | None = None) -> list[str]:
    """Return the subscribe (or unsubscribe) requests of a venue's channels."""
    spec = VENUES[venue]
    channels = spec.channels if channels is None else channels
    if not spec.advanced:
        return [orjson.dumps({"type": op, "product_ids": product_ids,
                              "channels": list(channels)}).decode()]
    out = [orjson.dumps({"type": op, "product_ids": product_ids, "channel": c}).decode()
           for c in channels]
    if op == "subscribe" and len(channels) == len(spec.channels):
        out.append(orjson.dumps({"type": op, "channel": "heartbeats"}).decode())
    return out


SPECS = {
    venue: VenueSpec(
        venue=venue, ws_url=api.ws_url, rest_url=api.rest_url, channels=api.channels,
        sequence_rule=CoinbaseRule, instrument_paths=(api.products_path,),
        instrument_parser=parse_instruments,
        # The product lists are public on Coinbase's own hosts (no REST snapshots to redirect).
        instruments_follow_rest_url=False,
        snapshot_on_subscribe=True,
    )
    for venue, api in VENUES.items()
}


# --- the feed ----------------------------------------------------------------------------


class CoinbaseFeed(Feed):
    """Coinbase level2 books (resynced by resubscribing), trades and best bid/ask."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._api = VENUES[venue]
        self._by_product = {i.venue_symbol: i for i in self.instruments.values()}
        for book in self.books.values():
            book.buffering = False  # the resent snapshot supersedes what arrives before it
        self._last_seq: int | None = None  # the connection's latest sequence_num
        self._anchor = 0  # first sequence_num of the current unbroken stretch
        self._exchange_seq = 0  # Exchange messages counted on this connection
        self.sequence_gaps = 0

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the subscribe requests for the products of `instruments`."""
        return subscribe_messages(self.venue, [i.venue_symbol for i in instruments])

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str] | None:
        """Return an unsubscribe/subscribe of the book channel (Coinbase resends the book)."""
        book = self._api.channels[:1]
        ids = [instrument.venue_symbol]
        return (subscribe_messages(self.venue, ids, "unsubscribe", book)
                + subscribe_messages(self.venue, ids, "subscribe", book))

    def reset_books(self, reason: str, instruments: Iterable[InstrumentId] | None = None) -> None:
        """Forget book state and the connection's sequence (a new connection)."""
        super().reset_books(reason, instruments)
        self._last_seq = None
        self._exchange_seq = 0

    def instrument_of(self, product_id: str) -> Instrument:
        """Return the subscribed instrument of a product id; DataError when not subscribed."""
        inst = self._by_product.get(product_id)
        if inst is None:
            raise DataError(f"product {product_id!r} is not subscribed")
        return inst

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Check the connection sequence, then route by channel (or Exchange message type)."""
        doc = decode(frame)
        if doc.get("type") == "error":
            self._control(doc, frame)
        # By shape, not venue: an Exchange recording replays under either venue name.
        elif "channel" in doc:
            self._advanced(doc, frame, ts_init)
        else:
            self._exchange(doc, frame, ts_init)

    # Advanced Trade ------------------------------------------------------------------

    def _advanced(self, doc: dict, frame: bytes, ts_init: int) -> None:
        channel = doc["channel"]
        seq = doc["sequence_num"]
        if not isinstance(seq, int):
            raise DataError(f"sequence_num {seq!r} is not an integer")
        ts_event = iso_ns(doc["timestamp"])
        self._sequence(seq, ts_event, ts_init)
        if channel == "l2_data":
            for event in doc["events"]:
                self._l2_event(event, seq, ts_event, ts_init)
        elif channel == "market_trades":
            self._market_trades(doc["events"], ts_init)
        elif channel == "ticker":
            self._tickers(doc["events"], ts_event, ts_init)
        elif channel not in ("heartbeats", "subscriptions"):
            raise DataError(f"unknown channel {channel!r}")

    def _market_trades(self, events: list[dict], ts_init: int) -> None:
        for event in events:
            for trade in event["trades"]:
                inst = self.instrument_of(trade["product_id"])
                self.bus.publish(parse_market_trade(trade, inst, ts_init))

    def _tickers(self, events: list[dict], ts_event: int, ts_init: int) -> None:
        if not self.bus.wants(Quote):
            return
        for event in events:
            for ticker in event["tickers"]:
                inst = self.instrument_of(ticker["product_id"])
                self.bus.publish(parse_ticker(ticker, inst, ts_event, ts_init))

    def _sequence(self, seq: int, ts_event: int, ts_init: int) -> None:
        last = self._last_seq
        self._last_seq = seq
        if last is None:
            self._anchor = seq
        elif seq != last + 1:
            # A message was lost (or repeated): no book can be trusted past this point.
            self.sequence_gaps += 1
            self._anchor = seq
            for book in self.books.values():
                if book.valid:
                    book.on_delta(_EMPTY, 0, seq, seq, seq, ts_event, ts_init)

    def _l2_event(self, event: dict, seq: int, ts_event: int, ts_init: int) -> None:
        inst = self.instrument_of(event["product_id"])
        levels = l2_levels(event["updates"], inst)
        kind = event["type"]
        if kind == "snapshot":
            self.on_snapshot(snapshot_from_levels(levels, inst, seq, ts_event, ts_init))
        elif kind == "update":
            self.books[inst.id].on_delta(levels, len(levels), seq, seq, self._anchor, ts_event,
                                         ts_init)
        else:
            raise DataError(f"unknown l2_data event type {kind!r}")

    # Exchange ------------------------------------------------------------------------

    def _exchange(self, doc: dict, frame: bytes, ts_init: int) -> None:
        kind = doc.get("type")
        # No sequence on the wire: count messages, so a snapshot still orders the updates
        # (TCP loses nothing within a connection; a new connection resends every snapshot).
        self._exchange_seq += 1
        seq = self._exchange_seq
        if kind == "l2update":
            inst = self.instrument_of(doc["product_id"])
            levels = exchange_change_levels(doc["changes"], inst)
            self.books[inst.id].on_delta(levels, len(levels), seq, seq, 0,
                                         iso_ns(doc["time"]), ts_init)
        elif kind == "snapshot":
            inst = self.instrument_of(doc["product_id"])
            levels = scan_exchange_snapshot(frame, inst)
            self.on_snapshot(snapshot_from_levels(levels, inst, seq, ts_init, ts_init))
        elif kind in ("match", "last_match"):
            self.bus.publish(parse_match(doc, self.instrument_of(doc["product_id"]), ts_init))
        elif kind == "ticker":
            if self.bus.wants(Quote) and "best_bid_size" in doc:
                inst = self.instrument_of(doc["product_id"])
                self.bus.publish(parse_ticker(doc, inst, iso_ns(doc["time"]), ts_init))
        elif kind not in ("subscriptions", "heartbeat"):
            raise DataError(f"unknown Coinbase message type {str(kind)!r}")

    def _control(self, doc: dict, frame: bytes) -> None:
        self.parse_error("venue_error", DataError(str(doc.get("message"))), frame)
