"""The live code path (websocket runner, REST snapshots, app startup and shutdown) against
local servers that serve recorded Binance frames."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import data_file, metric
from tests.integration.fake_binance import FakeBinance, Script
from tradebot.app import App
from tradebot.clock import LiveClock
from tradebot.config import Config, FeedConfig, ServerConfig, StateConfig, load_config
from tradebot.domain import InstrumentId

PERP = InstrumentId("BTC-USDT-PERP", "binance_usdm")


def make_config(tmp_path: Path, ws_url: str, rest_url: str) -> Config:
    base = load_config(environ={})
    feed = FeedConfig(venue="binance_usdm", symbols=["BTC-USDT-PERP"], ws_url=ws_url,
                      rest_url=rest_url, stale_after_s=1.0, backoff_initial_s=0.05,
                      backoff_max_s=0.2, resync_min_interval_s=0.05)
    return dataclasses.replace(
        base, feeds=[feed],
        state=StateConfig(database_url=f"sqlite:///{tmp_path}/t.sqlite3", equity_interval_s=0.5),
        server=ServerConfig(port=0),
        watchdog=dataclasses.replace(base.watchdog, startup_book_timeout_s=5.0),
    )


async def wait_for(predicate, limit_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


TOP = 300  # the local book keeps the best 1,000 levels per side; compare well inside that


def book_of(app: App) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
    book = app.books[PERP].book
    return book.levels(1, TOP), book.levels(-1, TOP)


def venue_top(fake: FakeBinance) -> tuple[list[tuple[Decimal, Decimal]],
                                         list[tuple[Decimal, Decimal]]]:
    bids, asks = fake.book()
    return sorted(bids.items(), reverse=True)[:TOP], sorted(asks.items())[:TOP]


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.text()


async def test_dropped_connection_resyncs_and_the_book_matches_the_venue(tmp_path: Path) -> None:
    fake = FakeBinance(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"), 4000,
                       Script(drop_after=[1200], skip_while_down=150, frames_per_second=2500))
    await fake.start()
    config = make_config(tmp_path, f"ws://127.0.0.1:{fake.ws_port}/stream",
                         f"http://127.0.0.1:{fake.http_port}")
    reconnects = metric("tradebot_feed_reconnects_total", venue="binance_usdm",
                        reason="closed_by_venue")
    app = App(config, LiveClock())
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_live(stop))
    try:
        await wait_for(lambda: app.health.ready)
        port = app.server.port
        await wait_for(lambda: fake.connections >= 2)
        await asyncio.wait_for(fake.done.wait(), 30)
        await wait_for(lambda: app.books[PERP].valid and app.books[PERP].last_seq == fake.last_u)
        assert book_of(app) == venue_top(fake)
        status, body = await get(port, "/readyz")
        assert status == 200, body
        status, text = await get(port, "/metrics")
        assert 'tradebot_feed_messages_total{venue="binance_usdm"}' in text
        assert "tradebot_feed_handler_seconds_bucket" in text
        assert "tradebot_store_queue_depth" in text
        status, body = await get(port, "/api/portfolio")
        assert status == 200 and '"currency": "USDT"' in body
        assert metric("tradebot_feed_reconnects_total", venue="binance_usdm",
                      reason="closed_by_venue") == reconnects + 1
        assert fake.snapshots_served >= 2  # the first sync and the resync after the drop
        # Silence: the stale deadline invalidates the book and readiness says why.
        await wait_for(lambda: not app.books[PERP].valid, limit_s=10)
        ready, detail = app.health.readiness()
        assert not ready and any("no data" in r or "book" in r for r in detail["reasons"])
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
        await fake.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_network_down_keeps_retrying_not_ready_and_says_why(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(tmp_path, f"ws://127.0.0.1:{port}/stream", f"http://127.0.0.1:{port}")
    config = dataclasses.replace(
        config, watchdog=dataclasses.replace(config.watchdog, startup_book_timeout_s=0.3))
    before = metric("tradebot_feed_reconnects_total", venue="binance_usdm",
                    reason="connection_refused")
    app = App(config, LiveClock())
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_live(stop))
    try:
        await wait_for(lambda: metric("tradebot_feed_reconnects_total", venue="binance_usdm",
                                      reason="connection_refused") >= before + 3)
        await wait_for(lambda: app.health.ready)  # the process is up (READY=1) ...
        ready, detail = app.health.readiness()
        assert not ready  # ... but not ready to trade, and says why
        assert detail["venues"]["binance_usdm"]["state"] in ("disconnected", "connecting")
        assert not task.done()
        status, body = await get(app.server.port, "/readyz")
        assert status == 503 and "binance_usdm" in body
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0


@pytest.mark.parametrize("silent_after", [300])
async def test_a_silent_server_is_detected_and_reconnected(tmp_path: Path,
                                                           silent_after: int) -> None:
    fake = FakeBinance(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"), 2000,
                       Script(silent_after=silent_after, frames_per_second=2000))
    await fake.start()
    config = make_config(tmp_path, f"ws://127.0.0.1:{fake.ws_port}/stream",
                         f"http://127.0.0.1:{fake.http_port}")
    before = metric("tradebot_feed_reconnects_total", venue="binance_usdm", reason="stale")
    app = App(config, LiveClock())
    stop = asyncio.Event()
    task = asyncio.create_task(app.run_live(stop))
    try:
        await wait_for(lambda: metric("tradebot_feed_reconnects_total", venue="binance_usdm",
                                      reason="stale") > before)
        await wait_for(lambda: fake.connections >= 2)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 15) == 0
        await fake.stop()
