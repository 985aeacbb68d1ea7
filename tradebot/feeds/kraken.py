"""Kraken spot public market data: websocket v2 (live) and v1 (the recorded 2021 frames).

Rules (../shared/EXCHANGES.md §3): no sequence numbers; each book update (v1) or message (v2,
snapshots too) carries a CRC32 of the top 10 asks then bids, built from the level strings with
'.' removed and leading zeros stripped. Apply a message's levels in order, truncate each side
to the subscribed depth (no deletes are sent beyond it), then verify. A mismatch or a lost
connection means unsubscribe and subscribe again for a fresh snapshot; REST depth has no id to
bridge with. v1 sends fixed-decimal strings per pair, so the checksum digits are the level's
integer units at the pair's wire decimals (learned from each snapshot); v2 sends JSON numbers to
be formatted at the instrument's precision, which is how the units are held.
"""

from __future__ import annotations

import calendar
import time
import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal

import numpy as np
import orjson

from tradebot.book import OrderBook
from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import FeedConfig
from tradebot.core import checksum as kcheck
from tradebot.core.jsonscan import MISSING, key_code, scan_object
from tradebot.core.objscan import scan_object_levels
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, Quote, Trade
from tradebot.feeds.base import Feed, as_data_error
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------

VENUES = ("kraken",)
WS_URL_V2 = "wss://ws.kraken.com/v2"
REST_URL = "https://api.kraken.com"
INSTRUMENTS_PATH = "/0/public/AssetPairs"
DEPTH_V2 = 100  # subscribed book depth on v2 (10, 25, 100, 500 or 1000)
CHANNELS = ("book", "trade", "ticker")
CHECKSUM_DEPTH = 10
PING_V2 = '{"method":"ping"}'
PING_V1 = '{"event":"ping"}'
PING_INTERVAL_S = 15.0
# Kraken's legacy asset codes in v1 pair names and AssetPairs `wsname`s.
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}

_C = key_code("c")
_AS, _BS, _A, _B = key_code("as"), key_code("bs"), key_code("a"), key_code("b")
_V1_CODES = np.array([_C], np.int64)
_V2_CODES = np.array([key_code("checksum")], np.int64)
_BIDS, _ASKS = key_code("bids"), key_code("asks")
_PRICE, _QTY = key_code("price"), key_code("qty")


class NoSequence:
    """Kraken books carry no sequence: every delta follows; integrity is the checksum."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Accept the first delta after a snapshot."""
        return "apply"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Accept every later delta."""
        return "apply"


class TopTenChecksum:
    """Kraken's CRC32 of a book, from integer units shifted to the wire's decimals."""

    def __init__(self, px_shift: int = 0, sz_shift: int = 0) -> None:
        self.px_shift = px_shift
        self.sz_shift = sz_shift

    def checksum(self, book: OrderBook) -> int:
        """Return the unsigned CRC32 Kraken sends for `book`."""
        return int(kcheck.crc_fixed_top(kcheck.CRC_TABLE, book.keys, book.sizes, book.counts,
                                        CHECKSUM_DEPTH, self.px_shift, self.sz_shift))


# --- pure parsing ------------------------------------------------------------------------


def normalize_pair(name: str) -> str:
    """Return the normalized symbol of a Kraken pair: `XBT/USD` -> `BTC-USD`."""
    base, sep, quote = name.partition("/")
    if not sep or not base or not quote:
        raise DataError(f"Kraken pair {name!r} is not BASE/QUOTE")
    return f"{ASSET_ALIASES.get(base, base)}-{ASSET_ALIASES.get(quote, quote)}"


def v2_symbol(name: str) -> str:
    """Return the v2 symbol of a v1 pair name or wsname: `XBT/USD` -> `BTC/USD`."""
    return normalize_pair(name).replace("-", "/")


@as_data_error
def parse_instruments(body: bytes, venue: str = "kraken") -> list[Instrument]:
    """Parse REST AssetPairs into spot instruments with normalized symbols."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or data.get("error") or not isinstance(data.get("result"),
                                                                         dict):
        raise DataError(f"AssetPairs response has errors or no result: {str(data)[:200]}")
    out = []
    for pair in data["result"].values():
        wsname = pair.get("wsname")
        if not wsname or pair.get("status", "online") not in ("online", "post_only",
                                                                "limit_only", "cancel_only"):
            continue
        symbol = normalize_pair(wsname)
        px_dec, lot_dec = int(pair["pair_decimals"]), int(pair["lot_decimals"])
        tick = Decimal(str(pair["tick_size"])) if pair.get("tick_size") else Decimal(1).scaleb(
            -px_dec)
        base, quote = symbol.split("-")
        out.append(Instrument(
            id=InstrumentId(symbol, venue), venue_symbol=symbol.replace("-", "/"),
            kind=MarketKind.SPOT, base=base, quote=quote, tick_size=tick,
            lot_size=Decimal(1).scaleb(-lot_dec),
            min_notional=Decimal(str(pair.get("costmin") or 0)),
            price_precision=px_dec, size_precision=lot_dec,
        ))
    return out


def split_v1(frame: bytes) -> tuple[bytes, bytes, int]:
    """Return (channel name, pair, end of the payload) of a v1 `[id, ..., name, pair]` frame."""
    end = frame.rstrip().rfind(b'"]')
    pair_start = frame.rfind(b',"', 0, end)
    name_start = frame.rfind(b',"', 0, pair_start)
    if end < 0 or pair_start < 0 or name_start < 0 or not frame.startswith(b"["):
        raise DataError("not a v1 channel frame")
    return frame[name_start + 2:pair_start - 1], frame[pair_start + 2:end], name_start


def wire_decimals(text: str) -> int:
    """Return the digits after the point of a fixed-decimal string."""
    return len(text.partition(".")[2])


def iso_to_ns(text: str) -> int:
    """Convert an RFC 3339 UTC time (`2023-09-25T07:49:37.708706Z`) to ns, exactly."""
    if not text.endswith("Z"):
        raise DataError(f"timestamp {text!r} is not UTC")
    whole, _, frac = text[:-1].partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


@as_data_error
def parse_v1_trades(payload: list, instrument: Instrument, ts_init: int) -> list[Trade]:
    """Parse a v1 trade payload `[[price, volume, time, side, type, misc], ...]`."""
    return [Trade(instrument=instrument.id, price=float(t[0]), size=float(t[1]),
                  aggressor=Side.BUY if t[3] == "b" else Side.SELL,
                  trade_id=f"{t[2]}", ts_event=_seconds_ns(t[2]), ts_init=ts_init)
            for t in payload]


@as_data_error
def parse_v1_ticker(payload: dict, instrument: Instrument, ts_init: int) -> Quote:
    """Parse a v1 ticker payload (`a`/`b`: [price, whole lot volume, lot volume])."""
    return Quote(instrument=instrument.id, bid_price=float(payload["b"][0]),
                 bid_size=float(payload["b"][2]), ask_price=float(payload["a"][0]),
                 ask_size=float(payload["a"][2]), ts_event=ts_init, ts_init=ts_init)


@as_data_error
def parse_v2_trades(data: list, instrument: Instrument, ts_init: int) -> list[Trade]:
    """Parse v2 `trade` data entries."""
    return [Trade(instrument=instrument.id, price=float(t["price"]), size=float(t["qty"]),
                  aggressor=Side.BUY if t["side"] == "buy" else Side.SELL,
                  trade_id=str(t["trade_id"]), ts_event=iso_to_ns(t["timestamp"]),
                  ts_init=ts_init)
            for t in data]


@as_data_error
def parse_v2_ticker(entry: dict, instrument: Instrument, ts_init: int) -> Quote:
    """Parse one v2 `ticker` data entry (it carries no time: ts_event is ours)."""
    return Quote(instrument=instrument.id, bid_price=float(entry["bid"]),
                 bid_size=float(entry["bid_qty"]), ask_price=float(entry["ask"]),
                 ask_size=float(entry["ask_qty"]), ts_event=ts_init, ts_init=ts_init)


def _seconds_ns(text: str) -> int:
    whole, _, frac = str(text).partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def subscribe_v2(channel: str, symbols: list[str], method: str = "subscribe") -> str:
    """Return a v2 (un)subscribe message."""
    params: dict = {"channel": channel, "symbol": symbols}
    if channel == "book":
        params["depth"] = DEPTH_V2
    return orjson.dumps({"method": method, "params": params}).decode()


def subscribe_v1(name: str, pairs: list[str], event: str = "subscribe",
                 depth: int = 1000) -> str:
    """Return a v1 (un)subscribe message."""
    sub: dict = {"name": name}
    if name == "book":
        sub["depth"] = depth
    return orjson.dumps({"event": event, "pair": pairs, "subscription": sub}).decode()


def v1_pair(instrument: Instrument) -> str:
    """Return the v1 pair name of an instrument (`BTC/USD` -> `XBT/USD`)."""
    base, quote = instrument.venue_symbol.split("/")
    back = {v: k for k, v in ASSET_ALIASES.items()}
    return f"{back.get(base, base)}/{back.get(quote, quote)}"


def subscribed_symbols(client_frames: Sequence[bytes]) -> set[str]:
    """Return the v2 symbols of the pairs that v1 or v2 client frames subscribe."""
    names = set()
    for frame in client_frames:
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, dict):
            params = msg.get("params") or {}
            for name in (msg.get("pair") or []) + (params.get("symbol") or []):
                names.add(v2_symbol(str(name)))
    return names


SPECS = {
    venue: VenueSpec(
        venue=venue, ws_url=WS_URL_V2, rest_url=REST_URL, channels=CHANNELS,
        sequence_rule=NoSequence, instrument_paths=(INSTRUMENTS_PATH,),
        instrument_parser=parse_instruments, keepalive=(PING_V2, PING_INTERVAL_S),
        snapshot_on_subscribe=True,
    )
    for venue in VENUES
}


# --- the feed ----------------------------------------------------------------------------


class KrakenFeed(Feed):
    """Kraken spot: books verified by checksum, trades, best bid/ask; v2 live, v1 replay."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._by_symbol = {i.venue_symbol: i for i in self.instruments.values()}
        self._v1_names: dict[bytes, Instrument] = {}
        self._checkers: dict[InstrumentId, TopTenChecksum] = {}
        self._last_frame: dict[InstrumentId, int] = {}
        self._levels = np.empty((20_000, 3), np.int64)
        self._values = np.empty(1, np.int64)
        self.v1 = False
        for iid, book in self.books.items():
            checker = self._checkers[iid] = TopTenChecksum()
            book.checker = checker
            book.buffering = False
            book.max_depth = DEPTH_V2

    def wire_shifts(self, instrument: InstrumentId) -> tuple[int, int]:
        """Return the (price, size) decimal shifts from book units to the wire's strings."""
        checker = self._checkers[instrument]
        return checker.px_shift, checker.sz_shift

    # --- connection ------------------------------------------------------------------

    def connection_url(self, config: FeedConfig, instruments: Sequence[Instrument]) -> str:
        """Return the websocket URL (v2 unless the configured URL is not a /v2 one)."""
        url = super().connection_url(config, instruments)
        self.v1 = not url.rstrip("/").endswith("/v2")
        return url

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return the book, trade and ticker subscriptions of `instruments`."""
        if self.v1:
            pairs = [v1_pair(i) for i in instruments]
            return [subscribe_v1(name, pairs) for name in CHANNELS]
        symbols = [i.venue_symbol for i in instruments]
        return [subscribe_v2(channel, symbols) for channel in CHANNELS]

    def keepalive(self) -> tuple[str, float]:
        """Ping well inside Kraken's silence deadline."""
        return (PING_V1 if self.v1 else PING_V2), PING_INTERVAL_S

    def resync_messages(self, instrument: Instrument, reason: str) -> list[str]:
        """Unsubscribe and subscribe the book again: Kraken then sends a new snapshot."""
        if self.v1:
            pair = [v1_pair(instrument)]
            return [subscribe_v1("book", pair, "unsubscribe"), subscribe_v1("book", pair)]
        sym = [instrument.venue_symbol]
        return [subscribe_v2("book", sym, "unsubscribe"), subscribe_v2("book", sym)]

    # --- frames ------------------------------------------------------------------------

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one v1 or v2 frame."""
        if frame.startswith(b"["):
            self._v1_channel(frame, ts_init)
            return
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise DataError("frame is neither a channel array nor an object")
        channel = msg.get("channel")
        if channel == "book":
            self._v2_book(frame, msg, ts_init)
        elif channel in ("trade", "ticker"):
            self._v2_market(channel, msg["data"], ts_init)
        elif channel in ("heartbeat", "status", "instrument"):
            return
        elif channel is None:
            self._control(msg)
        else:
            raise DataError(f"unknown channel {channel!r}")

    def _v2_market(self, channel: str, data: list, ts_init: int) -> None:
        for entry in data:
            inst = self._instrument(entry["symbol"])
            if channel == "trade":
                for trade in parse_v2_trades([entry], inst, ts_init):
                    self.bus.publish(trade)
            elif self.bus.wants(Quote):
                self.bus.publish(parse_v2_ticker(entry, inst, ts_init))

    def _control(self, msg: dict) -> None:
        event = msg.get("event") or msg.get("method")
        if event in ("heartbeat", "systemStatus", "pong", "subscribe", "unsubscribe",
                     "subscriptionStatus") and msg.get("success", True) is not False \
                and msg.get("status") != "error":
            return
        if event is None:
            raise DataError("object frame without channel, event or method")
        raise DataError(f"venue said {event}: {msg.get('error') or msg.get('errorMessage')}")

    def _instrument(self, symbol: str) -> Instrument:
        inst = self._by_symbol.get(symbol)
        if inst is None:
            raise DataError(f"frame for unsubscribed symbol {symbol!r}")
        return inst

    def _v1_instrument(self, pair: bytes) -> Instrument:
        inst = self._v1_names.get(pair)
        if inst is None:
            inst = self._v1_names[pair] = self._instrument(v2_symbol(pair.decode()))
        return inst

    def _v1_channel(self, frame: bytes, ts_init: int) -> None:
        name, pair, end = split_v1(frame)
        inst = self._v1_instrument(pair)
        if name.startswith(b"book"):
            self._v1_book(frame, name, end, inst, ts_init)
            return
        payload = orjson.loads(b"[" + frame[frame.index(b",") + 1:end] + b"]")[0]
        if name == b"trade":
            for trade in parse_v1_trades(payload, inst, ts_init):
                self.bus.publish(trade)
        elif name == b"ticker":
            if self.bus.wants(Quote):
                self.bus.publish(parse_v1_ticker(payload, inst, ts_init))
        elif name != b"spread":
            raise DataError(f"unknown v1 channel {name!r}")

    def _v1_book(self, frame: bytes, name: bytes, end: int, inst: Instrument,
                 ts_init: int) -> None:
        book = self.books[inst.id]
        depth = int(name.partition(b"-")[2] or DEPTH_V2)
        start = frame.index(b"{")
        if frame.startswith((b'{"as"', b'{"bs"'), start):
            self._v1_snapshot(frame, start, depth, inst, ts_init)
            return
        fingerprint = zlib.crc32(frame)
        if self._last_frame.get(inst.id) == fingerprint:
            book.invalidate("duplicate", ts_init, ts_init)
            return
        self._last_frame[inst.id] = fingerprint
        n = self._scan_v1(frame, start, _B, _A, inst)
        second = frame.find(b"},{", start, end)
        if second >= 0:
            n = self._scan_v1(frame, second + 2, _B, _A, inst, n)
        checksum = int(self._values[0])
        book.on_delta(self._levels, n, -1, -1, -1, ts_init, ts_init,
                      None if checksum == MISSING else checksum)

    def _scan_v1(self, frame: bytes, start: int, bid: int, ask: int, inst: Instrument,
                 offset: int = 0) -> int:
        values = self._values
        if offset == 0:
            values[0] = MISSING
        n = scan_object(np.frombuffer(frame, np.uint8), start, _V1_CODES, values, bid, ask,
                        inst.price_decimals, inst.size_decimals, self._levels[offset:])
        if n < 0:
            raise DataError(f"v1 book frame for {inst.id} not scannable (code {n})")
        return offset + n

    def _v1_snapshot(self, frame: bytes, start: int, depth: int, inst: Instrument,
                     ts_init: int) -> None:
        # v1 strings are fixed-decimal per pair: learn the wire decimals the checksum uses.
        sides = orjson.loads(frame[start:frame.index(b"}", start) + 1])
        sample = (sides.get("as") or sides.get("bs") or [["0", "0"]])[0]
        checker = self._checkers[inst.id]
        checker.px_shift = wire_decimals(sample[0]) - inst.price_decimals
        checker.sz_shift = wire_decimals(sample[1]) - inst.size_decimals
        n = self._scan_v1(frame, start, _BS, _AS, inst)
        self._last_frame.pop(inst.id, None)
        book = self.books[inst.id]
        book.max_depth = depth
        book.on_snapshot(self._snapshot(inst, n, ts_init, ts_init))

    def _snapshot(self, inst: Instrument, n: int, ts_event: int, ts_init: int) -> BookSnapshot:
        levels = self._levels[:n]
        return BookSnapshot(
            instrument=inst.id,
            bids=np.ascontiguousarray(levels[levels[:, 0] == 1, 1:]),
            asks=np.ascontiguousarray(levels[levels[:, 0] == -1, 1:]),
            sequence=-1, ts_event=ts_event, ts_init=ts_init,
        )

    def _v2_book(self, frame: bytes, msg: dict, ts_init: int) -> None:
        buf = np.frombuffer(frame, np.uint8)
        pos = frame.index(b'"data"')
        pos = frame.index(b"{", pos)
        snapshot = msg.get("type") == "snapshot"
        for entry in msg["data"]:
            inst = self._instrument(entry["symbol"])
            values = self._values
            values[0] = MISSING
            n, end = scan_object_levels(buf, pos, _V2_CODES, values, _BIDS, _ASKS, _PRICE, _QTY,
                                        inst.price_decimals, inst.size_decimals, self._levels)
            if n < 0:
                raise DataError(f"v2 book message for {inst.id} not scannable (code {n})")
            ts_event = iso_to_ns(entry["timestamp"]) if "timestamp" in entry else ts_init
            checksum = None if values[0] == MISSING else int(values[0])
            book = self.books[inst.id]
            if snapshot:
                book.on_snapshot(self._snapshot(inst, n, ts_event, ts_init), checksum)
            else:
                book.on_delta(self._levels, n, -1, -1, -1, ts_event, ts_init, checksum)
            nxt = frame.find(b"{", end)
            pos = nxt if nxt >= 0 else end

