"""Binance instruments from the recorded REST exchangeInfo (spot, USD-M, COIN-M), and the
recorded cryptofeed sessions replayed with them: every book bridged, 0 gaps."""

from __future__ import annotations

import contextlib
import functools
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import data_file
from tests.unit.feeds.test_replay import replay_files
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import DataError
from tradebot.feeds import binance
from tradebot.feeds.recorded import is_instrument_list
from tradebot.feeds.replay import read_entries, read_rest_lines

FILES = {"binance": "BINANCE", "binance_usdm": "BINANCE_FUTURES",
         "binance_coinm": "BINANCE_DELIVERY"}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def exchange_info(venue: str) -> tuple[str, bytes]:
    entry = next(read_rest_lines(data_file(f"cryptofeed/{FILES[venue]}.0")))
    return entry.url, entry.payload


@functools.cache
def instruments(venue: str) -> dict[str, Instrument]:
    return {i.venue_symbol: i for i in binance.parse_instruments(exchange_info(venue)[1], venue)}


def test_spot_exchange_info_gives_tick_lot_min_notional_and_8_size_decimals() -> None:
    insts = instruments("binance")
    nkn = insts["NKNUSDT"]
    assert nkn.id == InstrumentId("NKN-USDT", "binance") and nkn.kind is MarketKind.SPOT
    assert (nkn.tick_size, nkn.lot_size, nkn.min_notional) == (
        Decimal("0.0001"), Decimal(1), Decimal(10))
    assert (nkn.price_decimals, nkn.size_decimals) == (8, 8)
    assert insts["RUNEEUR"].lot_size == Decimal("0.1")
    assert len(insts) == 1262  # status TRADING; the 433 in BREAK are left out


def test_usdm_perpetuals_are_linear_and_dated_contracts_keep_their_id() -> None:
    insts = instruments("binance_usdm")
    sushi = insts["SUSHIUSDT"]
    assert sushi.id == InstrumentId("SUSHI-USDT-PERP", "binance_usdm")
    assert sushi.kind is MarketKind.LINEAR_PERP
    assert (sushi.tick_size, sushi.lot_size, sushi.min_notional) == (
        Decimal("0.001"), Decimal(1), Decimal(5))
    assert sushi.price_decimals == 4  # pricePrecision: books hold prices off today's tick
    dated = [i for i in insts.values() if "_" in i.venue_symbol]
    assert dated and all(i.id.symbol == i.venue_symbol for i in dated)
    assert len(insts) == 121  # one PENDING_TRADING contract is left out


def test_coinm_contracts_carry_their_contract_size() -> None:
    insts = instruments("binance_coinm")
    btc = insts["BTCUSD_PERP"]
    assert btc.id == InstrumentId("BTC-USD-PERP", "binance_coinm")
    assert (btc.kind, btc.contract_size, btc.min_notional) == (
        MarketKind.INVERSE_PERP, Decimal(100), Decimal(0))
    assert insts["LINKUSD_211231"].id.symbol == "LINKUSD_211231"
    assert insts["LINKUSD_211231"].contract_size == 10
    assert len(insts) == 36


@pytest.mark.parametrize("venue", sorted(FILES))
def test_spec_names_the_recorded_exchange_info_url(venue: str) -> None:
    url, _ = exchange_info(venue)
    spec = binance.SPECS[venue]
    assert spec.instrument_urls(FeedConfig(venue=venue)) == [url]
    assert is_instrument_list(venue, url)
    assert not is_instrument_list(venue, url.replace("exchangeInfo", "depth"))
    local = FeedConfig(venue=venue, rest_url="http://127.0.0.1:8081")
    (local_url,) = spec.instrument_urls(local)
    assert local_url.startswith("http://127.0.0.1:8081/")


def test_error_bodies_raise_data_error() -> None:
    for body in (b'{"code":-1121,"msg":"Invalid symbol."}', b"[]", b"not json"):
        with pytest.raises(DataError):
            binance.parse_instruments(body, "binance")


def test_subscribed_symbols_come_from_a_streams_url_or_a_subscribe_message() -> None:
    url = b"wss://fstream.binance.com/stream?streams=sushiusdt@depth@100ms/ctkusdt@aggTrade"
    sub = b'{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","ethusdt@trade"],"id":1}'
    assert binance.subscribed_symbols([url]) == {"SUSHIUSDT", "CTKUSDT"}
    assert binance.subscribed_symbols([sub, b"garbage"]) == {"BTCUSDT", "ETHUSDT"}


def kline_frames(path: Path) -> int:
    return sum(1 for e in read_entries(path) if e.kind == "frame" and b"@kline_" in e.payload[:40])


@pytest.mark.parametrize("venue", sorted(FILES))
def test_recorded_session_bridges_every_book_with_instruments_from_rest(venue: str) -> None:
    path = data_file(f"cryptofeed/{FILES[venue]}.ws.1.0")
    feed = replay_files([path])
    assert feed.venue == venue
    books = feed.books.values()
    assert len(feed.books) == {"binance": 4, "binance_usdm": 4, "binance_coinm": 10}[venue]
    assert all(b.valid and b.snapshots == 1 for b in books)
    assert sum(b.gaps for b in books) == 0 and sum(b.resyncs for b in books) == 0
    # The only rejected frames are the recording's kline stream, which the feed does not use.
    assert feed.stats.parse_errors == {"DataError": kline_frames(path)}


def test_a_deleted_depth_diff_after_the_snapshot_is_a_gap(tmp_path: Path) -> None:
    src = data_file("cryptofeed/BINANCE.ws.1.0")
    lines = src.read_bytes().splitlines(keepends=True)
    snap_ts = next(e.ts for e in read_entries(src) if e.kind == "rest" and "BLZETH" in e.url)
    k = next(i for i, line in enumerate(lines) if b'"blzeth@depth' in line
             and int(float(line.partition(b":")[0]) * 1e9) > snap_ts + 1_000_000_000)
    path = tmp_path / "BINANCE.ws.1.0"
    path.write_bytes(b"".join([*lines[:k], *lines[k + 1:]]))
    for name in ("BINANCE.0", "BINANCE.http.0.0"):
        path.with_name(name).write_bytes(data_file(f"cryptofeed/{name}").read_bytes())
    feed = replay_files([path])
    book = feed.books[InstrumentId("BLZ-ETH", "binance")]
    assert book.gaps == 1 and not book.valid


# --- fuzzing ------------------------------------------------------------------------------

VALUES = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(),
                   st.text(max_size=8), st.lists(st.none(), max_size=2),
                   st.dictionaries(st.text(max_size=3), st.none(), max_size=2))


@FUZZ
@given(st.data())
def test_mutated_exchange_info_raises_only_data_error(data: st.DataObject) -> None:
    venue = data.draw(st.sampled_from(sorted(FILES)))
    doc = orjson.loads(exchange_info(venue)[1])
    rows = doc["symbols"]
    row = dict(rows[data.draw(st.integers(0, len(rows) - 1))])
    if data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(row)))
        row[key] = data.draw(VALUES)
    else:
        filters = [dict(f) for f in row["filters"]]
        f = filters[data.draw(st.integers(0, len(filters) - 1))]
        f[data.draw(st.sampled_from(sorted(f)))] = data.draw(VALUES)
        row["filters"] = filters
    with contextlib.suppress(DataError):
        binance.parse_instruments(orjson.dumps({**doc, "symbols": [row]}), venue)
    with contextlib.suppress(DataError):
        binance.parse_instruments(data.draw(st.binary(max_size=64)), venue)
