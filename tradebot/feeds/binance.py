"""Binance spot, USD-M and COIN-M public market data (combined streams + REST depth).

Bridging rules (../shared/EXCHANGES.md §1):
- spot: drop deltas with `u` <= lastUpdateId; the first applied has U <= lastUpdateId+1 <= u;
  afterwards U == previous u + 1 (U > local+1 is a gap, u <= local is stale);
- futures: drop `u` < lastUpdateId; the first applied has U <= lastUpdateId <= u; afterwards
  `pu` == previous `u` (futures ids are engine-wide, so `U` is not previous u + 1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import orjson

from tradebot.bus import Bus
from tradebot.clock import Clock
from tradebot.config import FeedConfig
from tradebot.core.jsonscan import MISSING, key_code, scan_object
from tradebot.domain import Instrument, InstrumentId, MarketKind, Side
from tradebot.errors import DataError
from tradebot.events import BookSnapshot, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds.base import Feed, as_data_error
from tradebot.feeds.parsing import Scratch, decode
from tradebot.feeds.spec import VenueSpec
from tradebot.feeds.sync import Verdict

# --- declarations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Market:
    """Endpoints and stream names of one Binance market."""

    ws_url: str
    rest_url: str
    depth_path: str
    depth_stream: str
    futures: bool


VENUES = {
    "binance": Market("wss://stream.binance.com:9443/stream", "https://api.binance.com",
                         "/api/v3/depth", "depth@100ms", futures=False),
    "binance_usdm": Market("wss://fstream.binance.com/stream", "https://fapi.binance.com",
                              "/fapi/v1/depth", "depth@100ms", futures=True),
    "binance_coinm": Market("wss://dstream.binance.com/stream", "https://dapi.binance.com",
                               "/dapi/v1/depth", "depth@100ms", futures=True),
}
CHANNELS = ("depth", "trade", "bookTicker", "markPrice")
# Streams per connection: spot allows 1024; for USD-M/COIN-M the docs say 1024 but adapters
# cite 200 (EXCHANGES.md §1), so futures stay under the lower figure.
MAX_STREAMS = {"binance": 1024, "binance_usdm": 200, "binance_coinm": 200}
INSTRUMENTS_PATHS = {"binance": "/api/v3/exchangeInfo", "binance_usdm": "/fapi/v1/exchangeInfo",
                     "binance_coinm": "/dapi/v1/exchangeInfo"}
# Spot books publish sizes finer than the order lot (8 decimals on the wire).
SPOT_SIZE_PRECISION = 8
MARK_PRICE_STREAM = "markPrice@1s"  # futures only: mark, index and funding rate each second
# The REST depth limits Binance accepts (other values are rejected by the venue).
SPOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)
FUTURES_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

# Header fields of a depthUpdate, in the order of DEPTH_KEYS.
DEPTH_KEYS = ("E", "T", "U", "u", "pu")
_DEPTH_CODES = np.array([key_code(k) for k in DEPTH_KEYS], np.int64)
_SNAPSHOT_CODES = np.array([key_code("lastUpdateId"), key_code("E"), key_code("T")], np.int64)
_B, _A = key_code("b"), key_code("a")
_BIDS, _ASKS = key_code("bids"), key_code("asks")
_MS = 1_000_000


class SpotRule:
    """Spot update-id rules."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot."""
        if last <= snapshot_seq:
            return "drop"
        return "apply" if first <= snapshot_seq + 1 else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after an applied one."""
        if last <= last_applied:
            return "drop"
        return "gap" if first > last_applied + 1 else "apply"


class FuturesRule:
    """USD-M / COIN-M update-id rules: the `pu` chain."""

    def bridge(self, snapshot_seq: int, first: int, last: int, prev: int) -> Verdict:
        """Judge the first delta after a snapshot."""
        if last < snapshot_seq:
            return "drop"
        return "apply" if first <= snapshot_seq else "gap"

    def follow(self, last_applied: int, first: int, last: int, prev: int) -> Verdict:
        """Judge a delta after an applied one."""
        if prev == last_applied:
            return "apply"
        return "drop" if last <= last_applied else "gap"


# --- pure parsing ------------------------------------------------------------------------


def split_stream(frame: bytes) -> tuple[str, int]:
    """Return the combined-stream name and the offset of its `data` object."""
    start = frame.find(b'"stream":"')
    if start < 0:
        raise DataError("frame has no combined-stream wrapper")
    start += 10
    end = frame.index(b'"', start)
    data = frame.find(b'"data":', end)
    if data < 0:
        raise DataError("frame has no data object")
    return frame[start:end].decode(), data + 7


def new_scratch() -> Scratch:
    """Allocate scratch space for scanning depthUpdate frames."""
    return Scratch.new(len(DEPTH_KEYS))


def scan_depth(frame: bytes, offset: int, instrument: Instrument, scratch: Scratch) -> int:
    """Scan a depthUpdate at `offset` into `scratch`; return the number of levels.

    Raise DataError when the frame is malformed or a price is finer than the instrument's tick.
    """
    header = scratch.header
    header.fill(MISSING)
    n = scan_object(np.frombuffer(frame, np.uint8), offset, _DEPTH_CODES, header, _B, _A,
                    instrument.price_decimals, instrument.size_decimals, scratch.levels)
    if n < 0:
        raise DataError(f"depthUpdate for {instrument.id} not scannable (code {n})")
    if header[2] == MISSING or header[3] == MISSING or header[0] == MISSING:
        raise DataError(f"depthUpdate for {instrument.id} lacks E, U or u")
    return n


def parse_snapshot(body: bytes, instrument: Instrument, ts_init: int) -> BookSnapshot:
    """Parse a REST depth response (`lastUpdateId`, `bids`, `asks`) into a BookSnapshot."""
    values = np.full(3, MISSING, np.int64)
    size = body.count(b"[") + 1
    levels = np.empty((size, 3), np.int64)
    n = scan_object(np.frombuffer(body, np.uint8), 0, _SNAPSHOT_CODES, values, _BIDS, _ASKS,
                    instrument.price_decimals, instrument.size_decimals, levels)
    if n < 0 or values[0] == MISSING:
        raise DataError(f"depth snapshot for {instrument.id} not parseable (code {n})")
    levels = levels[:n]
    ts_ms = values[2] if values[2] != MISSING else values[1]
    return BookSnapshot(
        instrument=instrument.id,
        bids=np.ascontiguousarray(levels[levels[:, 0] == 1, 1:]),
        asks=np.ascontiguousarray(levels[levels[:, 0] == -1, 1:]),
        sequence=int(values[0]),
        ts_event=int(ts_ms) * _MS if ts_ms != MISSING else ts_init,
        ts_init=ts_init,
    )


def _instrument(row: dict, venue: str) -> Instrument | None:
    # Spot and USD-M say `status`, COIN-M `contractStatus`.
    if (row.get("status") or row.get("contractStatus")) != "TRADING":
        return None
    base, quote, symbol = row["baseAsset"], row["quoteAsset"], row["symbol"]
    if not VENUES[venue].futures:
        name, kind = f"{base}-{quote}", MarketKind.SPOT
    else:
        kind = MarketKind.LINEAR_PERP if venue == "binance_usdm" else MarketKind.INVERSE_PERP
        # Dated contracts keep their own id (`BTCUSD_211231`): the domain has no dated kind.
        name = f"{base}-{quote}-PERP" if row["contractType"] == "PERPETUAL" else symbol
    # Books carry prices finer than today's tick (orders resting since a tick change): hold
    # them at the wire's decimals, `quotePrecision` on spot and `pricePrecision` on futures.
    futures = VENUES[venue].futures
    price_precision = int(row["pricePrecision"] if futures else row["quotePrecision"])
    filters = {f["filterType"]: f for f in row["filters"]}
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    # Spot says `minNotional`, USD-M `notional`; COIN-M has no notional filter.
    min_notional = notional.get("minNotional") or notional.get("notional") or "0"
    return Instrument(
        id=InstrumentId(name, venue), venue_symbol=symbol, kind=kind, base=base, quote=quote,
        tick_size=Decimal(filters["PRICE_FILTER"]["tickSize"]),
        lot_size=Decimal(filters["LOT_SIZE"]["stepSize"]),
        min_notional=Decimal(str(min_notional)),
        contract_size=Decimal(str(row.get("contractSize", 1))),
        price_precision=price_precision,
        size_precision=int(row["quantityPrecision"]) if futures else SPOT_SIZE_PRECISION,
    )


@as_data_error
def parse_instruments(body: bytes, venue: str) -> list[Instrument]:
    """Parse an `exchangeInfo` body (spot, USD-M or COIN-M) into trading instruments."""
    data = orjson.loads(body)
    if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
        raise DataError(f"exchangeInfo response has no symbols: {str(data)[:200]}")
    return [inst for row in data["symbols"] if (inst := _instrument(row, venue)) is not None]


def subscribed_symbols(client_frames: Sequence[bytes]) -> set[str]:
    """Return the upper-case symbols of the streams a `?streams=` URL or SUBSCRIBE names."""
    names: list[str] = []
    for frame in client_frames:
        text = frame.decode(errors="replace")
        if "streams=" in text:
            names += text.partition("streams=")[2].partition("&")[0].split("/")
            continue
        try:
            msg = orjson.loads(frame)
        except orjson.JSONDecodeError:
            continue
        if isinstance(msg, dict) and isinstance(msg.get("params"), list):
            names += [str(p) for p in msg["params"]]
    return {name.partition("@")[0].upper() for name in names if "@" in name}


def parse_trade(data: dict, instrument: Instrument, ts_init: int) -> Trade:
    """Parse a `trade` or `aggTrade` payload."""
    trade_id = data["t"] if data.get("e") == "trade" else data["a"]
    return Trade(
        instrument=instrument.id,
        price=float(data["p"]),
        size=float(data["q"]),
        # m: the buyer is the maker, so the seller was the aggressor.
        aggressor=Side.SELL if data["m"] else Side.BUY,
        trade_id=str(trade_id),
        ts_event=int(data["T"]) * _MS,
        ts_init=ts_init,
    )


def parse_book_ticker(data: dict, instrument: Instrument, ts_init: int) -> Quote:
    """Parse a `bookTicker` payload (spot has no timestamp: ts_event is our receive time)."""
    ts_ms = data.get("T") or data.get("E")
    return Quote(
        instrument=instrument.id,
        bid_price=float(data["b"]),
        bid_size=float(data["B"]),
        ask_price=float(data["a"]),
        ask_size=float(data["A"]),
        ts_event=int(ts_ms) * _MS if ts_ms else ts_init,
        ts_init=ts_init,
    )


def parse_mark_price(data: dict, instrument: Instrument,
                     ts_init: int) -> tuple[MarkPrice, FundingRate | None]:
    """Parse a futures `markPriceUpdate`; the funding rate is None for dated contracts (`r` "")."""
    ts_event = int(data["E"]) * _MS
    index = data.get("i")
    mark = MarkPrice(instrument=instrument.id, mark_price=float(data["p"]),
                     index_price=float(index) if index not in (None, "") else None,
                     ts_event=ts_event, ts_init=ts_init)
    rate, next_ms = data.get("r"), data.get("T")
    if rate in (None, ""):
        return mark, None
    return mark, FundingRate(instrument=instrument.id, rate=float(rate),
                             next_funding_ns=int(next_ms) * _MS if next_ms else None,
                             ts_event=ts_event, ts_init=ts_init)


def stream_names(venue: str, instruments: list[Instrument]) -> list[str]:
    """Return the combined-stream names to subscribe for `instruments`."""
    spec = VENUES[venue]
    names = []
    for inst in instruments:
        sym = inst.venue_symbol.lower()
        names += [f"{sym}@{spec.depth_stream}", f"{sym}@trade", f"{sym}@bookTicker"]
        if spec.futures:
            names.append(f"{sym}@{MARK_PRICE_STREAM}")
    return names


def snapshot_url(venue: str, rest_url: str, instrument: Instrument, limit: int) -> str:
    """Return the REST depth URL for an instrument, with the nearest valid limit."""
    spec = VENUES[venue]
    allowed = FUTURES_LIMITS if spec.futures else SPOT_LIMITS
    limit = min((v for v in allowed if v >= limit), default=allowed[-1])
    base = rest_url or spec.rest_url
    return f"{base}{spec.depth_path}?symbol={instrument.venue_symbol}&limit={limit}"


def _spec(venue: str) -> VenueSpec:
    market = VENUES[venue]
    # Streams per instrument: depth, trade, bookTicker (and the mark price on futures).
    streams = len(CHANNELS) if market.futures else len(CHANNELS) - 1
    return VenueSpec(
        venue=venue, ws_url=market.ws_url, rest_url=market.rest_url,
        channels=CHANNELS if market.futures else CHANNELS[:-1],
        sequence_rule=FuturesRule if market.futures else SpotRule,
        instrument_paths=(INSTRUMENTS_PATHS[venue],), instrument_parser=parse_instruments,
        max_instruments_per_connection=MAX_STREAMS[venue] // streams,
        snapshot_url=functools.partial(snapshot_url, venue), snapshot_parser=parse_snapshot,
    )


SPECS = {venue: _spec(venue) for venue in VENUES}


# --- the feed ----------------------------------------------------------------------------


class BinanceFeed(Feed):
    """A Binance market's combined stream: depth diffs into books, trades, best bid/ask."""

    specs = SPECS

    def __init__(self, venue: str, instruments: Iterable[Instrument], bus: Bus,
                 clock: Clock) -> None:
        super().__init__(venue, instruments, bus, clock)
        self._by_stream_symbol = {i.venue_symbol.lower(): i for i in self.instruments.values()}
        self._scratch = new_scratch()
        self._routes: dict[bytes, tuple[str, Instrument]] = {}

    def connection_url(self, config: FeedConfig, instruments: Sequence[Instrument]) -> str:
        """Return the combined-stream URL of one connection's instruments (it subscribes)."""
        base = config.ws_url or self.spec.ws_url
        return f"{base}?streams={'/'.join(stream_names(self.venue, list(instruments)))}"

    def connection_messages(self, instruments: Sequence[Instrument]) -> list[str]:
        """Return nothing: the combined-stream URL subscribes."""
        return []

    def instrument_of(self, stream: str) -> Instrument:
        """Return the instrument a stream name refers to; DataError when not subscribed."""
        symbol, _, _ = stream.partition("@")
        inst = self._by_stream_symbol.get(symbol)
        if inst is None:
            raise DataError(f"frame for unsubscribed stream {stream!r}")
        return inst

    def _route(self, stream: bytes) -> tuple[str, Instrument]:
        route = self._routes.get(stream)
        if route is None:
            name = stream.decode()
            channel = name.partition("@")[2]
            kind = "depth" if channel.startswith("depth") else channel
            if channel == MARK_PRICE_STREAM:
                kind = "markPrice"
            if kind not in ("depth", "trade", "aggTrade", "bookTicker", "markPrice"):
                raise DataError(f"unknown channel {channel!r}")
            route = self._routes[stream] = (kind, self.instrument_of(name))
        return route

    def handle(self, frame: bytes, ts_init: int) -> None:
        """Route one combined-stream frame."""
        if not frame.startswith(b'{"stream":"'):
            raise DataError("frame has no combined-stream wrapper")
        end = frame.find(b'"', 11)
        kind, inst = self._route(frame[11:end])
        if kind == "depth":
            offset = frame.find(b'"data":', end) + 7
            scratch = self._scratch
            n = scan_depth(frame, offset, inst, scratch)
            e_ms, t_ms, first, last, prev = scratch.header.tolist()
            ts_event = (t_ms if t_ms != MISSING else e_ms) * _MS
            self.books[inst.id].on_delta(scratch.levels, n, first, last,
                                         prev if prev != MISSING else -1, ts_event, ts_init)
        elif kind == "bookTicker":
            # Nobody listening: skip decoding (the frame is still counted as received).
            if self._want_quotes:
                self.bus.publish(parse_book_ticker(decode(frame)["data"], inst, ts_init))
        elif kind == "markPrice":
            mark, funding = parse_mark_price(decode(frame)["data"], inst, ts_init)
            self.bus.publish(mark)
            if funding is not None:
                self.bus.publish(funding)
        else:
            self.bus.publish(parse_trade(decode(frame)["data"], inst, ts_init))

    @property
    def _want_quotes(self) -> bool:
        return self.bus.wants(Quote)
