"""The live code path (FeedRunner + venue Feed) against the local replay server: instruments
from its REST endpoint, a connection dropped mid-stream, a server gone silent; afterwards the
books equal a clean replay of the same recording."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import data_file, metric
from tradebot.bus import Bus
from tradebot.clock import LiveClock, SimClock, monotonic
from tradebot.config import Config, FeedConfig
from tradebot.feeds.base import Feed
from tradebot.feeds.instruments import live_instruments
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import ReplayDriver, inspect
from tradebot.feeds.replay_server import ReplayServer
from tradebot.feeds.runner import FeedRunner

CASES = {
    # venue: (recording, frames per second, where the fault starts)
    "kraken": ("cryptofeed/KRAKEN.ws.50.0", 1500.0, 1200),
    "okx": ("cryptofeed/OKX.ws.1.0", 150.0, 120),
}


async def clean_books(recording: str) -> dict[str, tuple[list, list]]:
    rec = inspect(data_file(recording))
    clock = SimClock()
    feed = build_feed(rec.venue, rec.instruments, Bus(), clock)
    await ReplayDriver({rec.venue: feed}, clock, [rec]).run(progress=False)
    return books_of(feed)


def books_of(feed: Feed) -> dict[str, tuple[list, list]]:
    return {str(iid): (b.book.levels(1, 5000), b.book.levels(-1, 5000))
            for iid, b in feed.books.items()}


async def wait_for(check: Callable[[], bool], limit_s: float = 30.0) -> None:
    deadline = monotonic() + limit_s
    while not check():
        if monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def start(venue: str, fps: float) -> tuple[ReplayServer, FeedConfig]:
    path = data_file(CASES[venue][0])
    server = ReplayServer(inspect(path), frames_per_second=fps)
    await server.start()
    cfg = FeedConfig(venue=venue, symbols=[i.id.symbol for i in server.instruments],
                     ws_url=server.ws_url, rest_url=server.rest_url, stale_after_s=0.5,
                     backoff_initial_s=0.05, backoff_max_s=0.2, resync_min_interval_s=0.0,
                     instruments_from_venue=True)
    return server, cfg


async def client(cfg: FeedConfig) -> Feed:
    # Instrument metadata from the venue's REST instrument endpoint, as the app does at start.
    found = await live_instruments(Config(feeds=[cfg], instruments=[]))
    assert sorted(i.symbol for i in found.instruments) == sorted(cfg.symbols)
    return build_feed(cfg.venue, found.feeds[cfg.venue], Bus(), LiveClock())


async def run_until_clean(venue: str, fault: Callable[[ReplayServer, Feed], Awaitable[None]]
                          ) -> tuple[ReplayServer, Feed]:
    """Serve the venue's recording, inject `fault` mid-stream, wait for books equal to a clean
    replay's; return the server and the client feed."""
    recording, fps, fault_at = CASES[venue]
    clean = await clean_books(recording)
    server, cfg = await start(venue, fps)
    feed = await client(cfg)
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(FeedRunner(feed, cfg, LiveClock(), session).run())
        try:
            await wait_for(lambda: server.played >= fault_at)
            await fault(server, feed)
            await asyncio.wait_for(server.done.wait(), 60)
            await wait_for(lambda: books_of(feed) == clean and all(
                b.valid for b in feed.books.values()))
        finally:
            task.cancel()
            await server.stop()
    return server, feed


@pytest.mark.parametrize("venue", sorted(CASES))
async def test_a_dropped_connection_resyncs_and_books_match_a_clean_replay(venue: str) -> None:
    before = metric("tradebot_feed_reconnects_total", venue=venue, reason="connection_lost")

    async def drop(server: ReplayServer, _feed: Feed) -> None:
        assert server.drop_connections() == 1
        await wait_for(lambda: server.connections >= 2)

    _, feed = await run_until_clean(venue, drop)
    assert metric("tradebot_feed_reconnects_total", venue=venue,
                  reason="connection_lost") == before + 1
    assert sum(b.checksums_failed for b in feed.books.values()) == 0
    assert sum(b.checksums_ok for b in feed.books.values()) > 0
    # The rebuilt books came from snapshots the server rendered from its mirror.
    assert all(b.snapshots >= 2 for b in feed.books.values())


@pytest.mark.parametrize("venue", sorted(CASES))
async def test_a_silent_server_is_detected_and_books_rebuild(venue: str) -> None:
    before = metric("tradebot_feed_reconnects_total", venue=venue, reason="stale")

    async def silence(server: ReplayServer, feed: Feed) -> None:
        server.silent = True
        await wait_for(lambda: metric("tradebot_feed_reconnects_total", venue=venue,
                                      reason="stale") > before)
        assert not any(b.valid for b in feed.books.values())  # a stale stream is invalid
        server.silent = False

    server, feed = await run_until_clean(venue, silence)
    assert server.connections >= 2
    assert sum(b.checksums_failed for b in feed.books.values()) == 0


async def test_keepalive_is_answered_and_resubscribe_gets_a_fresh_snapshot(
        tmp_path: Path) -> None:
    server, cfg = await start("okx", 100.0)
    feed = await client(cfg)
    async with aiohttp.ClientSession() as session:
        runner = FeedRunner(feed, cfg, LiveClock(), session)
        task = asyncio.create_task(runner.run())
        try:
            await wait_for(lambda: all(b.valid for b in feed.books.values()))
            book = next(iter(feed.books.values()))
            snapshots = book.snapshots
            # The 2022 stream has no seqIds: a resync resubscribes on the live connection.
            runner.request_snapshot(book.instrument.id, "test")
            await wait_for(lambda: book.snapshots > snapshots and book.valid)
            await asyncio.wait_for(server.done.wait(), 60)
        finally:
            task.cancel()
            await server.stop()
    assert feed.stats.parse_errors == {}
