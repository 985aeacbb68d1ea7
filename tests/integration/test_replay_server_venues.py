"""Binance, Bybit v5, KuCoin and Coinbase through the live code path (FeedRunner + venue Feed)
against the local replay server: a connection dropped mid-stream and a server gone silent;
afterwards the top of every book equals a clean replay of the same recording.

Recordings are cut or converted in the test's tmp dir: a prefix of a Binance hftbacktest file,
Bybit's own v5 dump in the recorder framing, KuCoin's cryptofeed session as recorded, and the
cryptofeed Coinbase Exchange session both as recorded (`coinbase_exchange`) and re-enveloped
as Advanced Trade `l2_data` messages (`coinbase`: the same real books, the documented shape).
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import data_file, metric
from tests.unit.feeds.test_bybit import XRP
from tradebot.bus import Bus
from tradebot.clock import LiveClock, SimClock, monotonic
from tradebot.config import Config, FeedConfig, load_config
from tradebot.domain import Instrument, InstrumentId
from tradebot.feeds import coinbase
from tradebot.feeds.base import Feed
from tradebot.feeds.instruments import live_instruments
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import ReplayDriver, inspect, read_entries, read_rest_lines
from tradebot.feeds.replay_server import ReplayServer, rfc3339
from tradebot.feeds.runner import FeedRunner

TOP = 20  # levels per side compared (rendered REST snapshots are partial books, as the venues')


def binance_prefix(tmp: Path) -> tuple[Path, list[Instrument]]:
    src = data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz")
    out = tmp / "btcusdt_usdm_prefix.txt"
    with gzip.open(src, "rb") as fh:
        out.write_bytes(b"".join(line for _, line in zip(range(12_000), fh, strict=False)))
    inst = load_config(environ={}).instrument_map()[InstrumentId("BTC-USDT-PERP", "binance_usdm")]
    return out, [inst]


def bybit_dump(tmp: Path) -> tuple[Path, list[Instrument]]:
    # Bybit's dump in the recorder framing: header, the subscribe the client sent, frames.
    with zipfile.ZipFile(data_file("bybit_v5/xrpusdt-ob500.data.zip")) as archive:
        frames = archive.read(archive.namelist()[0]).splitlines()
    first_ns = orjson.loads(frames[0])["ts"] * 1_000_000
    lines = [b"%d #tradebot venue=bybit_linear" % first_ns,
             b'%d < {"op":"subscribe","args":["orderbook.500.XRPUSDT"]}' % first_ns]
    ts = first_ns
    for frame in frames:
        ts = max(ts, orjson.loads(frame)["ts"] * 1_000_000)
        lines.append(b"%d %s" % (ts, frame))
    out = tmp / "bybit_xrpusdt.txt"
    out.write_bytes(b"\n".join(lines) + b"\n")
    return out, [XRP]


def kucoin_session(tmp: Path) -> tuple[Path, list[Instrument]]:
    data_file("cryptofeed/KUCOIN.http.0.0")
    data_file("cryptofeed/KUCOIN.0")
    path = data_file("cryptofeed/KUCOIN.ws.1.0")
    # Left out: BSV-USDT, whose book prices are finer than its listed priceIncrement (only a
    # config entry with price_precision describes it), and LTX-USDT, which the session
    # subscribed without taking a REST snapshot (no book to serve or compare).
    return path, [i for i in inspect(path).instruments
                  if i.id.symbol not in ("BSV-USDT", "LTX-USDT")]


def coinbase_exchange_session(tmp: Path, l2_frames: int = 2_500) -> Path:
    # The session's start (its snapshots, then the first l2updates) beside its product list.
    src = data_file("cryptofeed/COINBASE.ws.28.0")
    shutil.copy(data_file("cryptofeed/COINBASE.0"), tmp / "COINBASE.0")
    out, kept = [], 0
    for line in src.read_bytes().splitlines(keepends=True):
        kept += b'{"type":"l2update"' in line[:60]
        if kept > l2_frames:
            break
        out.append(line)
    path = tmp / "COINBASE.ws.28.0"
    path.write_bytes(b"".join(out))
    return path


def coinbase_exchange(tmp: Path) -> tuple[Path, list[Instrument]]:
    return coinbase_exchange_session(tmp), []


def coinbase_advanced(tmp: Path) -> tuple[Path, list[Instrument]]:
    # The Exchange session's books re-enveloped as Advanced Trade `l2_data` (snapshot/update),
    # numbered by `sequence_num`; the product list recorded as the REST response it was.
    source = coinbase_exchange_session(tmp)
    body = next(e.payload for e in read_rest_lines(tmp / "COINBASE.0")
                if e.url.endswith("/products"))
    lines = []
    seq = 0
    for entry in read_entries(source, "cryptofeed"):
        if entry.kind == "connect":
            lines.append(b"%d #tradebot venue=coinbase" % entry.ts)
            lines.append(b"%d > %s %s" % (entry.ts, coinbase.VENUES["coinbase"].products_url
                                          .encode(), body))
        elif entry.kind == "sent":
            lines.append(b"%d < %s" % (entry.ts, entry.payload))
        elif entry.kind == "frame" and (event := _l2_event(entry.payload)) is not None:
            lines.append(b"%d %s" % (entry.ts, orjson.dumps({
                "channel": "l2_data", "client_id": "", "timestamp": rfc3339(entry.ts),
                "sequence_num": seq, "events": [event]})))
            seq += 1
    out = tmp / "coinbase_advanced.txt"
    out.write_bytes(b"\n".join(lines) + b"\n")
    return out, []


def _l2_event(frame: bytes) -> dict | None:
    doc = orjson.loads(frame)
    side = {"buy": "bid", "sell": "offer"}
    if doc.get("type") == "snapshot":
        updates = [{"side": s, "event_time": "1970-01-01T00:00:00Z", "price_level": p,
                    "new_quantity": q}
                   for s, key in (("bid", "bids"), ("offer", "asks")) for p, q in doc[key]]
        return {"type": "snapshot", "product_id": doc["product_id"], "updates": updates}
    if doc.get("type") == "l2update":
        updates = [{"side": side[s], "event_time": doc["time"], "price_level": p,
                    "new_quantity": q} for s, p, q in doc["changes"]]
        return {"type": "update", "product_id": doc["product_id"], "updates": updates}
    return None


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], tuple[Path, list[Instrument]]]
    fps: float
    fault_at: int  # frames played when the fault starts
    from_venue: bool = False  # instruments from the server's REST instrument list


CASES = {
    "binance_usdm": Case(binance_prefix, 3_000.0, 5_000),
    "bybit_linear": Case(bybit_dump, 12.0, 20),
    "kucoin": Case(kucoin_session, 1_000.0, 1_500, from_venue=True),
    "coinbase": Case(coinbase_advanced, 800.0, 1_000),
    "coinbase_exchange": Case(coinbase_exchange, 800.0, 1_000),
}


def top(feed: Feed) -> dict[str, tuple[list, list]]:
    return {str(iid): (b.book.levels(1, TOP), b.book.levels(-1, TOP))
            for iid, b in feed.books.items()}


async def clean_top(path: Path, venue: str, instruments: list[Instrument]) -> dict:
    rec = inspect(path, venue)
    clock = SimClock()
    feed = build_feed(venue, instruments or rec.instruments, Bus(), clock)
    await ReplayDriver({venue: feed}, clock, [rec]).run(progress=False)
    assert feed.books and all(b.valid for b in feed.books.values())
    books = top(feed)
    assert all(bids and asks for bids, asks in books.values())  # something to compare
    return books


async def wait_for(check: Callable[[], bool], limit_s: float = 20.0) -> None:
    deadline = monotonic() + limit_s
    while not check():
        if monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Setup:
    server: ReplayServer
    cfg: FeedConfig
    feed: Feed
    clean: dict


async def setup(venue: str, tmp: Path, fps: float | None = None) -> Setup:
    case = CASES[venue]
    path, instruments = case.make(tmp)
    clean = await clean_top(path, venue, instruments)
    server = ReplayServer(inspect(path, venue), instruments=instruments or None,
                          frames_per_second=fps or case.fps)
    await server.start()
    # KuCoin: no ws_url, so the client asks the server's bullet-public where to connect.
    cfg = FeedConfig(venue=venue, symbols=[i.id.symbol for i in server.instruments],
                     ws_url="" if venue == "kucoin" else server.ws_url,
                     rest_url=server.rest_url, stale_after_s=0.5, backoff_initial_s=0.05,
                     backoff_max_s=0.2, resync_min_interval_s=0.0,
                     instruments_from_venue=case.from_venue)
    found = list(server.instruments)
    if case.from_venue:
        fetched = await live_instruments(Config(feeds=[cfg], instruments=[]))
        assert sorted(i.symbol for i in fetched.instruments) == sorted(cfg.symbols)
        found = list(fetched.feeds[venue])
    return Setup(server, cfg, build_feed(venue, found, Bus(), LiveClock()), clean)


async def run_until_clean(s: Setup, fault: Callable[[], object],
                          recover: Callable[[], object]) -> None:
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(FeedRunner(s.feed, s.cfg, LiveClock(), session).run())
        try:
            await wait_for(lambda: s.server.played >= CASES[s.cfg.venue].fault_at)
            fault()
            await recover()  # type: ignore[misc]
            await asyncio.wait_for(s.server.done.wait(), 30)
            await wait_for(lambda: all(b.valid for b in s.feed.books.values())
                           and top(s.feed) == s.clean)
        finally:
            task.cancel()
            await s.server.stop()


@pytest.mark.parametrize("venue", sorted(CASES))
async def test_a_dropped_connection_resyncs_and_books_match_a_clean_replay(
        venue: str, tmp_path: Path) -> None:
    s = await setup(venue, tmp_path)
    before = metric("tradebot_feed_reconnects_total", venue=venue, reason="connection_lost")

    async def reconnected() -> None:
        await wait_for(lambda: s.server.connections >= 2)

    await run_until_clean(s, lambda: s.server.drop_connections(), reconnected)
    assert metric("tradebot_feed_reconnects_total", venue=venue,
                  reason="connection_lost") == before + 1
    assert s.feed.stats.parse_errors == {}
    # Every book was rebuilt on the second connection from a snapshot the server rendered
    # (REST or a resubscription's), not only from the recording's own.
    assert all(b.snapshots >= 2 for b in s.feed.books.values())


@pytest.mark.parametrize("venue", sorted(CASES))
async def test_a_silent_server_is_detected_and_books_rebuild(venue: str, tmp_path: Path) -> None:
    s = await setup(venue, tmp_path)
    before = metric("tradebot_feed_reconnects_total", venue=venue, reason="stale")

    def go_silent() -> None:
        s.server.silent = True

    async def detected_then_speak() -> None:
        await wait_for(lambda: metric("tradebot_feed_reconnects_total", venue=venue,
                                      reason="stale") > before)
        assert not any(b.valid for b in s.feed.books.values())  # a stale stream is invalid
        s.server.silent = False

    await run_until_clean(s, go_silent, detected_then_speak)
    assert s.server.connections >= 2
    assert s.feed.stats.parse_errors == {}


async def test_kucoin_pings_at_the_bullets_interval_and_gets_pongs(tmp_path: Path) -> None:
    s = await setup("kucoin", tmp_path, fps=400.0)
    s.server.protocol.ping_interval_ms = 100
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(FeedRunner(s.feed, s.cfg, LiveClock(), session).run())
        try:
            await wait_for(lambda: s.server.protocol.pings >= 3)
        finally:
            task.cancel()
            await s.server.stop()
    assert s.server.protocol.bullets == 1
    assert s.feed.ping_interval_s == 0.1  # type: ignore[attr-defined]
    assert s.feed.stats.parse_errors == {}  # welcome, acks and pongs understood


async def test_a_failed_bullet_request_is_a_counted_reconnect_reason(tmp_path: Path) -> None:
    s = await setup("kucoin", tmp_path)
    cfg = FeedConfig(venue="kucoin", symbols=s.cfg.symbols, rest_url=s.server.rest_url + "/x",
                     backoff_initial_s=0.05, backoff_max_s=0.1)
    before = metric("tradebot_feed_reconnects_total", venue="kucoin", reason="prepare_failed")
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(FeedRunner(s.feed, cfg, LiveClock(), session).run())
        try:
            await wait_for(lambda: metric("tradebot_feed_reconnects_total", venue="kucoin",
                                          reason="prepare_failed") >= before + 2)
        finally:
            task.cancel()
            await s.server.stop()
    assert s.server.connections == 0  # no bullet, no connection attempt
