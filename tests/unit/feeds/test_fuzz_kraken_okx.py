"""Property-based fuzzing of the Kraken and OKX parsers: garbage, truncated and mutated recorded
frames are counted as parse errors and never raise out of the feed."""

from __future__ import annotations

import contextlib
import functools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import data_file, metric
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.errors import DataError
from tradebot.feeds import kraken, okx
from tradebot.feeds.base import Feed
from tradebot.feeds.replay import inspect, read_entries

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def recorded(name: str) -> tuple[bytes, ...]:
    path = data_file(f"cryptofeed/{name}")
    frames = [e.payload for e in read_entries(path) if e.kind == "frame"]
    return tuple(frames[:: max(1, len(frames) // 300)])


@functools.cache
def instruments(name: str) -> tuple:
    return tuple(inspect(data_file(f"cryptofeed/{name}")).instruments)


def kraken_feed() -> Feed:
    feed = kraken.KrakenFeed("kraken", instruments("KRAKEN.ws.50.0"), Bus(), SimClock())
    for frame in recorded("KRAKEN.ws.50.0")[:40]:  # books synced, so deltas reach the kernel
        feed.on_frame(frame, 1)
    return feed


def okx_feed() -> Feed:
    feed = okx.OkxFeed("okx", instruments("OKX.ws.1.0"), Bus(), SimClock())
    for frame in recorded("OKX.ws.1.0")[:20]:
        feed.on_frame(frame, 1)
    return feed


def mutate(frame: bytes, data: st.DataObject) -> bytes:
    """Cut, splice, or replace a token of a real frame (a changed schema, a torn frame)."""
    kind = data.draw(st.sampled_from(["cut", "splice", "replace", "swap_type"]))
    if not frame:
        return frame
    i = data.draw(st.integers(0, len(frame) - 1))
    if kind == "cut":
        return frame[:i]
    if kind == "splice":
        return frame[:i] + data.draw(st.binary(max_size=12)) + frame[i:]
    if kind == "replace":
        j = data.draw(st.integers(i, len(frame)))
        return frame[:i] + data.draw(st.sampled_from(
            [b"", b"null", b"[]", b"{}", b'"x"', b"-1", b"1e999", b"0", b'"0.0.0"'])) + frame[j:]
    try:
        doc = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return frame
    return orjson.dumps(_swap_types(doc, data))


def _swap_types(doc: object, data: st.DataObject) -> object:
    if isinstance(doc, dict):
        return {k: _swap_types(v, data) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_swap_types(v, data) for v in doc]
    if data.draw(st.integers(0, 9)) == 0:
        return data.draw(st.sampled_from([None, [], {}, "", "abc", -5, 1.5, True]))
    return doc


def feed_survives(feed: Feed, frame: bytes) -> None:
    before = feed.stats.messages
    feed.on_frame(frame, 2)  # anything but a broken invariant is caught and counted here
    assert feed.stats.messages == before + 1


@FUZZ
@given(st.binary(max_size=300))
def test_kraken_random_bytes(frame: bytes) -> None:
    feed_survives(kraken_feed(), frame)


@FUZZ
@given(st.binary(max_size=300))
def test_okx_random_bytes(frame: bytes) -> None:
    feed_survives(okx_feed(), frame)


@FUZZ
@given(st.data())
def test_kraken_mutated_recorded_frames(data: st.DataObject) -> None:
    feed = kraken_feed()
    frame = data.draw(st.sampled_from(recorded("KRAKEN.ws.50.0")))
    feed_survives(feed, mutate(frame, data))


@FUZZ
@given(st.data())
def test_okx_mutated_recorded_frames(data: st.DataObject) -> None:
    feed = okx_feed()
    frame = data.draw(st.sampled_from(recorded("OKX.ws.1.0")))
    feed_survives(feed, mutate(frame, data))


@FUZZ
@given(st.data())
def test_handle_raises_only_the_errors_the_feed_counts(data: st.DataObject) -> None:
    # The parse step itself: what escapes `handle` must be one of the kinds on_frame counts.
    venue = data.draw(st.sampled_from(["kraken", "okx"]))
    feed = kraken_feed() if venue == "kraken" else okx_feed()
    name = "KRAKEN.ws.50.0" if venue == "kraken" else "OKX.ws.1.0"
    frame = mutate(data.draw(st.sampled_from(recorded(name))), data)
    with contextlib.suppress(DataError, KeyError, ValueError, TypeError, IndexError):
        feed.handle(frame, 3)


@FUZZ
@given(st.data())
def test_rest_and_instrument_parsers_raise_only_data_errors(data: st.DataObject) -> None:
    body = mutate(data.draw(st.sampled_from([
        b'{"code":"0","msg":"","data":[{"asks":[["101","1","0","1"]],"bids":[["100","1","0",'
        b'"1"]],"ts":"1700000000000","seqId":22}]}',
        b'{"code":"0","data":[{"instType":"SWAP","instId":"BTC-USDT-SWAP","uly":"BTC-USDT",'
        b'"ctType":"linear","ctVal":"0.01","tickSz":"0.1","lotSz":"1","state":"live"}]}',
        b'{"error":[],"result":{"XXBTZUSD":{"wsname":"XBT/USD","pair_decimals":1,'
        b'"lot_decimals":8,"costmin":"0.5"}}}',
    ])), data)
    inst = instruments("OKX.ws.1.0")[0]
    for parse in (lambda: okx.parse_snapshot(body, inst, 1), lambda: okx.parse_instruments(body),
                  lambda: kraken.parse_instruments(body)):
        with contextlib.suppress(DataError):
            parse()


def test_parse_errors_are_counted_per_kind_and_never_stop_the_feed() -> None:
    feed = okx_feed()
    before = metric("tradebot_feed_parse_errors_total", venue="okx", kind="DataError")
    for _ in range(3):
        feed.on_frame(b'{"arg":{"channel":"nope","instId":"BTC-USDT"},"data":[{}]}', 5)
    assert feed.stats.parse_errors["DataError"] == 3
    assert metric("tradebot_feed_parse_errors_total", venue="okx", kind="DataError") == \
        before + 3
    good = recorded("OKX.ws.1.0")[-1]
    feed.on_frame(good, 6)
    assert feed.stats.parse_errors["DataError"] == 3
