"""`tradebot serve-recording` as users run it: a Binance hftbacktest capture (no instrument list
in the file) served with the config's instruments, which the daemon then fetches from it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.conftest import REPO
from tests.integration.test_replay_server_venues import binance_prefix, wait_for
from tradebot.bus import Bus
from tradebot.clock import LiveClock
from tradebot.config import Config, FeedConfig, load_config
from tradebot.feeds.instruments import live_instruments
from tradebot.feeds.registry import build_feed
from tradebot.feeds.runner import FeedRunner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_hftbacktest_capture_is_served_with_the_configured_instruments(
        tmp_path: Path) -> None:
    path, (configured,) = binance_prefix(tmp_path)
    ws_port, http_port = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebot", "serve-recording", str(path), "--ws-port",
        str(ws_port), "--http-port", str(http_port), "--fps", "3000", cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        events: list[dict] = []
        while not events or events[-1].get("event") != "replay_server_started":
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            assert line, f"serve-recording exited: {events}"
            events.append(json.loads(line))  # every line is a JSON log event, none plain text
        assert events[-1]["file"] == str(path) and events[-1]["venue"] == "binance_usdm"
        assert events[-1]["ws"] == f"ws://127.0.0.1:{ws_port}/", events
        drained = asyncio.create_task(proc.stdout.read())  # a full pipe would block its logging
        cfg = FeedConfig(venue="binance_usdm", symbols=["BTC-USDT-PERP"],
                         ws_url=f"ws://127.0.0.1:{ws_port}/",
                         rest_url=f"http://127.0.0.1:{http_port}", stale_after_s=2.0,
                         backoff_initial_s=0.05, backoff_max_s=0.2, instruments_from_venue=True)
        fetched = await live_instruments(Config(feeds=[cfg], instruments=[]))
        (inst,) = fetched.feeds["binance_usdm"]
        assert dict(fetched.instruments) == {inst.id: inst}
        assert (inst.id, inst.venue_symbol, inst.kind, inst.tick_size, inst.lot_size,
                inst.min_notional, inst.contract_size, inst.price_decimals,
                inst.size_decimals) == (
            configured.id, configured.venue_symbol, configured.kind, configured.tick_size,
            configured.lot_size, configured.min_notional, configured.contract_size,
            configured.price_decimals, configured.size_decimals)
        feed = build_feed("binance_usdm", [inst], Bus(), LiveClock())
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(FeedRunner(feed, cfg, LiveClock(), session).run())
            try:
                await wait_for(lambda: all(b.valid for b in feed.books.values()), 30.0)
            finally:
                task.cancel()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await drained
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_the_default_config_has_the_capture_instrument() -> None:
    # What the CLI test above relies on: serve-recording takes [[instruments]] from the config.
    assert any(i.venue_symbol == "BTCUSDT" and i.id.venue == "binance_usdm"
               for i in load_config(environ={}).instrument_map().values())
