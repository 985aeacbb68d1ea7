"""Kraken Futures public market data: websocket v1 `book` with `seq`, trades, heartbeat.

Rules (../shared/EXCHANGES.md §3, verified on `KRAKEN_FUTURES.ws.1.0`: 7014 checks, 0 gaps):
subscribing to `book` sends a `book_snapshot` carrying `seq`; each later `book` message is one
level (`side`, `price`, absolute `qty`, 0 removes it) whose `seq` is the previous one + 1 per
product. A skipped `seq` is a gap; a repeated or older one is stale and dropped. The REST order
book carries no `seq`, so a book resyncs by unsubscribing and subscribing again (a new
snapshot). Numbers are JSON numbers: they become integer units through their shortest decimal
form, and a price off the instrument's grid is rejected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation

import numpy as np
import orjson

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds.base import Feed, as_data_error
from tradebot.feeds.parsing import decode, finite
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------

VENUES = ("kraken_futures",)
WS_URL = "wss://futures.kraken.com/ws/v1"
REST_URL = "https://futures.kraken.com"
INSTRUMENTS_PATH = "/derivatives/api/v3/instruments"
BOOK_FEED = "book"
# `ticker` carries best bid/ask with sizes, mark and index price, and (perpetuals) funding.
FEEDS = (BOOK_FEED, "trade", "ticker")
# {"feed":"heartbeat","time":...} every minute: it keeps the connection's stale deadline
# meaningful, since a quiet product's book sends nothing for minutes (no per-book deadline).
HEARTBEAT_FEED = "heartbeat"
# Product prefixes: perpetual or dated, inverse (coin-margined) or linear (multi-collateral).
PREFIX_KINDS = {
    "pi": (MarketKind.INVERSE_PERP, True), "pf": (MarketKind.LINEAR_PERP, True),
    "fi": (MarketKind.INVERSE_PERP, False), "ff": (MarketKind.LINEAR_PERP, False),
}
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
# Frames accepted without an event: acks, the server's info, trade history at subscribe,
# and ticker_lite (the recording's: best bid/ask without sizes, where the book says more).
_SILENT_FEEDS = ("trade_snapshot", "ticker_lite", HEARTBEAT_FEED)
_SILENT_EVENTS = ("info", "subscribed", "unsubscribed", "alert")
_MS = 1_000_000
_INT64_LIMIT = 2**63


class SeqRule:
    """`seq` per product: the first delta follows the snapshot's, each next one the last + 1."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot whose `seq` is `snapshot_seq`."""
        if last <= snapshot_seq:
            return "drop"
        return "apply" if first == snapshot_seq + 1 else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after the one whose `seq` was `last_applied`."""
        if last <= last_applied:
            return "drop"
        return "apply" if first == last_applied + 1 else "gap"


# --- pure parsing ------------------------------------------------------------------------


def normalize(product_id: str) -> tuple[str, MarketKind]:
    """Return (normalized symbol, kind): `PI_XBTUSD` -> `BTC-USD-PERP`.

    Dated futures keep their product id (`FI_XBTUSD_210924`) as symbol, with the kind of
    their settlement, since the domain has no dated-future kind.
    """
    prefix, sep, rest = product_id.lower().partition("_")
    if not sep or prefix not in PREFIX_KINDS:
        raise DataError(f"Kraken Futures product {product_id!r} is not a future")
    kind, perpetual = PREFIX_KINDS[prefix]
    if not perpetual:
        return product_id.upper(), kind
    pair = rest.upper()
    if "_" in pair or len(pair) < 6:
        raise DataError(f"Kraken Futures perpetual {product_id!r} has no BASEQUOTE pair")
    base, quote = pair[:-3], pair[-3:]
    return f"{ASSET_ALIASES.get(base, base)}-{ASSET_ALIASES.get(quote, quote)}-PERP", kind


def _assets(product_id: str) -> tuple[str, str]:
    pair = product_id.upper().split("_")[1]
    base, quote = pair[:-3], pair[-3:]
    return ASSET_ALIASES.get(base, base), ASSET_ALIASES.get(quote, quote)


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(f"{what} {value!r} is not a number")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation as exc:
        raise DataError(f"{what} {value!r} is not a number") from exc
    if not number.is_finite() or number < 0:
        raise DataError(f"{what} {value!r} out of range")
    return number


def _instrument(row: dict, venue: str) -> Instrument | None:
    symbol = str(row["symbol"])
    if not row.get("tradeable") or symbol[:3].lower() not in ("pi_", "pf_", "fi_", "ff_"):
        return None  # spot indices (`in_`, `rr_`) and halted products
    name, kind = normalize(symbol)
    base, quote = _assets(symbol)
    precision = row.get("contractValueTradePrecision")
    lot = Decimal(1).scaleb(-int(precision)) if precision is not None else Decimal(1)
    return Instrument(
        id=InstrumentId(name, venue), venue_symbol=symbol.upper(), kind=kind, base=base,
        quote=quote, tick_size=_decimal(row["tickSize"], "tickSize"), lot_size=lot,
        min_notional=Decimal(0),
        contract_size=_decimal(row.get("contractSize", 1), "contractSize"),
    )


@as_data_error
def parse_instruments(body: bytes, venue: str = "kraken_futures") -> list[Instrument]:
    """Parse REST `/derivatives/api/v3/instruments` (futures only; indices are skipped)."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or data.get("result") != "success":
        raise DataError(f"Kraken Futures instruments response is an error: {str(data)[:200]}")
    return [inst for row in data["instruments"] if (inst := _instrument(row, venue)) is not None]


def to_units(value: object, decimals: int, what: str) -> int:
    """Return a JSON number as integer units of 10**-decimals; DataError when off that grid."""
    scaled = _decimal(value, what).scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise DataError(f"{what} {value!r} is finer than {decimals} decimals")
    if scaled >= _INT64_LIMIT:
        raise DataError(f"{what} {value!r} does not fit the book's integer units")
    return int(scaled)


def _side(text: object) -> int:
    if text == "buy":
        return 1
    if text == "sell":
        return -1
    raise DataError(f"side {text!r} is neither buy nor sell")


@as_data_error
def parse_book_snapshot(msg: dict, instrument: Instrument, ts_init: int) -> BookSnapshot:
    """Parse a `book_snapshot` message (`bids`/`asks` of `{price, qty}`, `seq`, `timestamp`)."""
    pd, sd = instrument.price_decimals, instrument.size_decimals

    def side(rows: list) -> np.ndarray:
        out = np.empty((len(rows), 2), np.int64)
        for k, row in enumerate(rows):
            out[k, 0] = to_units(row["price"], pd, "price")
            out[k, 1] = to_units(row["qty"], sd, "qty")
        return out

    return BookSnapshot(instrument=instrument.id, bids=side(msg["bids"]),
                        asks=side(msg["asks"]), sequence=int(msg["seq"]),
                        ts_event=int(msg["timestamp"]) * _MS, ts_init=ts_init)


@as_data_error
def parse_book_level(msg: dict, instrument: Instrument, out: np.ndarray) -> tuple[int, int]:
    """Write a `book` message's level into `out[0]` as (side, price, size) units.

    Return (`seq`, venue time in ns).
    """
    out[0, 0] = _side(msg["side"])
    out[0, 1] = to_units(msg["price"], instrument.price_decimals, "price")
    out[0, 2] = to_units(msg["qty"], instrument.size_decimals, "qty")
    return int(msg["seq"]), int(msg["timestamp"]) * _MS


@as_data_error
def parse_trade(msg: dict, instrument: Instrument, ts_init: int) -> Trade:
    """Parse a `trade` message; `side` is the taker's."""
    return Trade(instrument=instrument.id, price=finite(msg["price"]), size=finite(msg["qty"]),
                 aggressor=Side.BUY if _side(msg["side"]) == 1 else Side.SELL,
                 trade_id=str(msg["uid"]), ts_event=int(msg["time"]) * _MS, ts_init=ts_init)


@as_data_error
def parse_ticker(msg: dict, instrument: Instrument,
                 ts_init: int) -> tuple[Quote, MarkPrice | None, FundingRate | None]:
    """Parse a `ticker` message: best bid/ask, mark price, and funding where it has one.

    `relative_funding_rate` is the rate (a fraction per funding period); `funding_rate` is an
    absolute amount per contract. `next_funding_rate_time` is epoch ms.
    """
    ts_event = int(msg["time"]) * _MS
    quote = Quote(instrument=instrument.id, bid_price=finite(msg["bid"]),
                  bid_size=finite(msg["bid_size"]), ask_price=finite(msg["ask"]),
                  ask_size=finite(msg["ask_size"]), ts_event=ts_event, ts_init=ts_init)
    mark = None
    if msg.get("markPrice") is not None:
        index = msg.get("index")
        mark = MarkPrice(instrument=instrument.id, mark_price=finite(msg["markPrice"]),
                         index_price=finite(index) if index is not None else None,
                         ts_event=ts_event, ts_init=ts_init)
    rate = msg.get("relative_funding_rate")
    if rate is None:
        return quote, mark, None
    next_ms = msg.get("next_funding_rate_time")
    funding = FundingRate(instrument=instrument.id, rate=finite(rate, low=None),
                          next_funding_ns=int(next_ms) * _MS if next_ms else None,
                          ts_event=ts_event, ts_init=ts_init)
    return quote, mark, funding


def subscribe(feed: str, product_ids: list[str], event: str = "subscribe") -> str:
    """Return an (un)subscribe message; the heartbeat feed takes no product ids."""
    msg: dict = {"event": event, "feed": feed}
    if feed != HEARTBEAT_FEED:
        msg["product_ids"] = product_ids
    return orjson.dumps(msg).decode()


SPECS = {
    venue: VenueSpec(
        venue=venue, ws_url=WS_URL, rest_url=REST_URL, channels=FEEDS, sequence_rule=SeqRule,
        instrument_paths=(INSTRUMENTS_PATH,), instrument_parser=parse_instruments,
        snapshot_on_subscribe=True,
    )
    for venue in VENUES
}


# --- the feed ----------------------------------------------------------------------------


class KrakenFuturesFeed(Feed):
    """Kraken Futures: books bridged by `seq`, trades; resync by resubscribing."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._by_product = {i.venue_symbol: i for i in self.instruments.values()}
        self._level = np.empty((1, 3), np.int64)
        for book in self.books.values():
            # A resubscribed snapshot supersedes whatever arrived while the book was invalid.
            book.buffering = False

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the subscriptions of `instruments`, and the heartbeat feed."""
        ids = [i.venue_symbol for i in instruments]
        return [subscribe(feed, ids) for feed in (*FEEDS, HEARTBEAT_FEED)]

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str]:
        """Unsubscribe and subscribe the book again: Kraken then sends a new snapshot."""
        ids = [instrument.venue_symbol]
        return [subscribe(BOOK_FEED, ids, "unsubscribe"), subscribe(BOOK_FEED, ids)]

    # --- frames ------------------------------------------------------------------------

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one frame."""
        msg = decode(frame)
        feed = msg.get("feed")
        if "event" in msg:
            self._event(msg)
        elif feed == BOOK_FEED:
            inst = self._instrument(msg)
            seq, ts_event = parse_book_level(msg, inst, self._level)
            self.books[inst.id].on_delta(self._level, 1, seq, seq, seq - 1, ts_event, ts_init)
        elif feed == "book_snapshot":
            inst = self._instrument(msg)
            self.books[inst.id].on_snapshot(parse_book_snapshot(msg, inst, ts_init))
        elif feed == "trade":
            self.bus.publish(parse_trade(msg, self._instrument(msg), ts_init))
        elif feed == "ticker":
            self._ticker(msg, ts_init)
        elif feed not in _SILENT_FEEDS:
            raise DataError(f"unknown feed {feed!r}")

    def _ticker(self, msg: dict, ts_init: int) -> None:
        quote, mark, funding = parse_ticker(msg, self._instrument(msg), ts_init)
        if self.bus.wants(Quote):
            self.bus.publish(quote)
        for event in (mark, funding):
            if event is not None:
                self.bus.publish(event)

    def _event(self, msg: dict) -> None:
        event = msg["event"]
        if event in _SILENT_EVENTS:
            return
        raise DataError(f"venue said {event}: {msg.get('message') or msg.get('feed')}")

    def _instrument(self, msg: dict) -> Instrument:
        product = msg["product_id"]
        inst = self._by_product.get(product)
        if inst is None:
            raise DataError(f"frame for unsubscribed product {product!r}")
        return inst
