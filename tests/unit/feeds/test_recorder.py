"""The recorder: hourly gzip files of `<ns> <frame>` lines that replay on their own, recorded
through the live code path (here from the local replay server)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

from tests.conftest import data_file
from tradebot.bus import Bus
from tradebot.clock import LiveClock, SimClock
from tradebot.config import FeedConfig
from tradebot.feeds.base import Feed
from tradebot.feeds.recorder import RecordingWriter, record
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import ReplayDriver, detect_framing, inspect, read_entries
from tradebot.feeds.replay_server import ReplayServer

HOUR = 3_600_000_000_000
T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14 22:13:20 UTC


def lines_of(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as fh:
        return fh.read().splitlines()


def test_files_rotate_hourly_and_each_starts_with_its_context(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "okx")
    writer.tap("rest", T0, "https://www.okx.com/api/v5/public/instruments?instType=SPOT",
               b'{"code":"0","data":[]}')
    writer.tap("send", T0 + 1, "wss://x", b'{"op":"subscribe","args":[]}')
    writer.tap("recv", T0 + 2, "wss://x", b'{"a":\n1}')
    writer.tap("rest", T0 + 3, "https://www.okx.com/api/v5/market/books?instId=X", b"{}")
    writer.keepalive = b"ping"
    writer.tap("send", T0 + 4, "wss://x", b"ping")
    writer.tap("send", T0 + 5, "wss://x", b'{"op":"subscribe","args":[]}')  # a reconnect
    writer.tap("recv", T0 + HOUR, "wss://x", b"\xff\x00binary")
    writer.close()
    assert [f.name for f in writer.files] == ["okx-2023111422.gz", "okx-2023111423.gz"]
    first, second = (lines_of(f) for f in writer.files)
    assert first == [
        b"%d #tradebot venue=okx" % T0,
        b"%d > https://www.okx.com/api/v5/public/instruments?instType=SPOT "
        b'{"code":"0","data":[]}' % T0,
        b'%d < {"op":"subscribe","args":[]}' % (T0 + 1),
        b'%d {"a": 1}' % (T0 + 2),
        b"%d > https://www.okx.com/api/v5/market/books?instId=X {}" % (T0 + 3),
        b"%d < ping" % (T0 + 4),
        b'%d < {"op":"subscribe","args":[]}' % (T0 + 5),
    ]
    # The next hour repeats the instrument list and the subscription (once), not the depth
    # snapshot nor the keep-alive.
    assert second[1] == first[1]
    assert second[2] == b'%d < {"op":"subscribe","args":[]}' % (T0 + 5)
    assert second[3] == b"%d b'\\xff\\x00binary'" % (T0 + HOUR)
    assert detect_framing(writer.files[1]) == "tradebot"
    kinds = [e.kind for e in read_entries(writer.files[0])]
    assert kinds == ["connect", "rest", "sent", "frame", "rest", "sent", "sent"]


async def replayed(paths: list[Path]) -> Feed:
    recs = [inspect(p) for p in paths]
    clock = SimClock()
    feed = build_feed(recs[0].venue, recs[0].instruments, Bus(), clock)
    await ReplayDriver({recs[0].venue: feed}, clock, recs).run(progress=False)
    return feed


def books_of(feed: Feed) -> dict[str, tuple[list, list]]:
    return {str(i): (b.book.levels(1, 5000), b.book.levels(-1, 5000))
            for i, b in feed.books.items()}


async def test_a_recording_of_the_live_path_replays_to_the_same_books(tmp_path: Path) -> None:
    source = data_file("cryptofeed/OKX.ws.1.0")
    server = ReplayServer(inspect(source), frames_per_second=300.0)
    await server.start()
    symbols = sorted(i.id.symbol for i in server.instruments)
    cfg = FeedConfig(venue="okx", symbols=symbols, ws_url=server.ws_url,
                     rest_url=server.rest_url, stale_after_s=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(record(cfg, tmp_path, LiveClock(), stop, {}))
    try:
        await asyncio.wait_for(server.done.wait(), 60)
        await asyncio.sleep(0.3)  # the last frames reach the client
    finally:
        stop.set()
        writer = await asyncio.wait_for(task, 10)
        await server.stop()
    assert writer.files and writer.lines > 300
    recorded = await replayed(writer.files)
    clean = await replayed([source])
    assert sorted(str(i) for i in recorded.books) == sorted(str(i) for i in clean.books)
    assert books_of(recorded) == books_of(clean)
    assert sum(b.checksums_failed for b in recorded.books.values()) == 0
    assert sum(b.checksums_ok for b in recorded.books.values()) >= 287
    assert recorded.stats.parse_errors == {}
