"""Property-based fuzzing of the Bybit, KuCoin and Coinbase parsers and feeds.

Malformed input must be rejected and counted (DataError and the other errors `Feed.on_frame`
counts), never escape: no AttributeError, no InvariantError from a book fed a bad level.
Seeds are real frames (recordings) and the doc-derived Coinbase fixtures, mutated structurally.
"""

from __future__ import annotations

import contextlib
import zipfile
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import data_dir
from tests.unit.feeds import test_bybit, test_coinbase
from tests.unit.feeds.test_kucoin import ws_frames
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import DataError
from tradebot.events import BookUpdated, FundingRate, MarkPrice, Quote, Trade
from tradebot.feeds import bybit, coinbase, kucoin
from tradebot.feeds.base import Feed

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KUCOIN_INST = Instrument(id=InstrumentId("BSV-USDT", "kucoin"), venue_symbol="BCHSV-USDT",
                         kind=MarketKind.SPOT, base="BSV", quote="USDT",
                         tick_size=kucoin.Decimal("0.001"),
                         lot_size=kucoin.Decimal("0.00000001"),
                         min_notional=kucoin.Decimal(0), size_precision=8)
EXCHANGE_INST = Instrument(id=InstrumentId("BAND-GBP", "coinbase_exchange"),
                           venue_symbol="BAND-GBP", kind=MarketKind.SPOT, base="BAND",
                           quote="GBP", tick_size=kucoin.Decimal("0.0001"),
                           lot_size=kucoin.Decimal("0.01"), min_notional=kucoin.Decimal(0),
                           size_precision=8)


def _seeds() -> dict[str, list[bytes]]:
    seeds: dict[str, list[bytes]] = {
        "bybit": [test_bybit.TRADE_FRAME, test_bybit.TICKER_SNAPSHOT, test_bybit.TICKER_DELTA,
                  b'{"success":false,"ret_msg":"x","op":"subscribe"}'],
        "kucoin": [b'{"id":"1","type":"welcome"}',
                   b'{"type":"message","topic":"/market/level2:BCHSV-USDT","subject":'
                   b'"trade.l2update","data":{"sequenceStart":5,"sequenceEnd":6,"symbol":'
                   b'"BCHSV-USDT","changes":{"asks":[["242.951","1","5"]],"bids":'
                   b'[["242.5","2","6"]]},"time":1}}'],
        "coinbase": test_coinbase.session() + test_coinbase.session("resnapshot.jsonl"),
        "coinbase_exchange": [
            b'{"type":"snapshot","product_id":"BAND-GBP","asks":[["14.8024","12.77"]],'
            b'"bids":[["14.7366","1.5"]]}',
            b'{"type":"l2update","product_id":"BAND-GBP","changes":[["buy","14.7","1"]],'
            b'"time":"2021-04-17T16:43:37.075687Z"}'],
    }
    root = data_dir()
    dump = root / "bybit_v5" / "xrpusdt-ob500.data.zip"
    if dump.exists():
        with zipfile.ZipFile(dump) as archive:
            lines = archive.read(archive.namelist()[0]).splitlines()
        seeds["bybit"] += lines[1:4]  # deltas (the 80 KB snapshot makes slow examples)
    for name, venue in (("KUCOIN.ws.1.0", "kucoin"), ("COINBASE.ws.28.0", "coinbase_exchange")):
        path = root / "cryptofeed" / name
        if path.exists():
            frames = [f for _, f in ws_frames(path) if b"BCHSV-USDT" in f or b"BAND-GBP" in f]
            seeds[venue] += [f for f in frames if len(f) < 4000][:40]
    return seeds


SEEDS = _seeds()


def _feed(venue: str) -> Feed:
    bus = Bus()
    for topic in (Trade, Quote, MarkPrice, FundingRate, BookUpdated):
        bus.subscribe(topic, lambda _e: None)  # make the feeds build every event
    clock = SimClock()
    if venue == "bybit":
        return bybit.BybitFeed("bybit_linear", [test_bybit.XRP, test_bybit.BTC], bus, clock,
                               depth=500)
    if venue == "kucoin":
        return kucoin.KucoinFeed("kucoin", [KUCOIN_INST], bus, clock)
    if venue == "coinbase":
        return coinbase.CoinbaseFeed("coinbase", [test_coinbase.BTC, test_coinbase.ETH], bus,
                                     clock)
    return coinbase.CoinbaseFeed("coinbase_exchange", [EXCHANGE_INST], bus, clock)


json_leaf = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
             | st.floats(allow_nan=False) | st.text(max_size=12)
             | st.sampled_from(["0", "-1", "1e5", "NaN", "inf", "1.000000000000001", "",
                                "snapshot", "delta", "update", "bid", "offer", "Buy"]))
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                          max_leaves=12)


def _mutate(doc: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace, drop or keep each part of a decoded frame."""
    action = data.draw(st.integers(0, 9))
    if action == 0:
        return data.draw(json_value)
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if data.draw(st.integers(0, 9)) == 0:
                continue
            out[key] = _mutate(value, data, depth + 1) if depth < 5 else value
        return out
    if isinstance(doc, list) and doc:
        keep = data.draw(st.integers(0, len(doc)))
        return [_mutate(v, data, depth + 1) if depth < 5 else v for v in doc[:keep]]
    return doc


def _run(venue: str, frames: list[bytes]) -> None:
    feed = _feed(venue)
    for n, frame in enumerate(frames):
        feed.on_frame(frame, n)  # must not raise


@SETTINGS
@given(venue=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_structurally_mutated_frames_are_rejected_or_handled(venue: str,
                                                             data: st.DataObject) -> None:
    seeds = SEEDS[venue]
    picks = data.draw(st.lists(st.integers(0, len(seeds) - 1), min_size=1, max_size=6))
    frames = []
    for i in picks:
        mutated = _mutate(orjson.loads(seeds[i]), data)
        frames.append(orjson.dumps(mutated))
    _run(venue, [seeds[0], *frames])


@SETTINGS
@given(venue=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_byte_level_corruption_is_rejected_or_handled(venue: str, data: st.DataObject) -> None:
    seeds = SEEDS[venue]
    frame = bytearray(seeds[data.draw(st.integers(0, len(seeds) - 1))])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] = data.draw(st.sampled_from(b'-0123456789.e"[]{},:x \\'))
    _run(venue, [seeds[0], bytes(frame)])


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_any_feed(blob: bytes) -> None:
    for venue in SEEDS:
        _run(venue, [blob])


@SETTINGS
@given(body=json_value)
def test_rest_parsers_raise_only_data_errors(body: Any) -> None:
    raw = orjson.dumps(body)
    wrapped = orjson.dumps({"code": "200000", "data": body, "result": body, "products": body})
    calls = [
        lambda b: bybit.parse_instruments(b, "bybit_linear"),
        lambda b: bybit.parse_snapshot(b, test_bybit.BTC, 1),
        lambda b: kucoin.parse_instruments(b),
        lambda b: kucoin.parse_bullet(b),
        lambda b: kucoin.parse_snapshot(b, KUCOIN_INST, 1),
        lambda b: coinbase.parse_instruments(b, "coinbase"),
    ]
    for call in calls:
        for payload in (raw, wrapped):
            with contextlib.suppress(DataError):
                call(payload)


@SETTINGS
@given(text=st.text(max_size=40))
def test_time_and_unit_converters_raise_only_data_errors(text: str) -> None:
    for convert in (coinbase.iso_ns, lambda t: coinbase.to_units(t, 4)):
        with contextlib.suppress(DataError):
            convert(text)
