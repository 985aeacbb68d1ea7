"""Replay framings: cryptofeed sessions (with REST merged by time, byte-literal frames) and
tradebot recordings, played through the same feed code as a live run."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import zlib
from pathlib import Path

import pytest

from tests.conftest import data_file
from tradebot.bus import Bus
from tradebot.cli import main
from tradebot.clock import SimClock
from tradebot.errors import DataError
from tradebot.feeds.base import Feed
from tradebot.feeds.registry import build_feed
from tradebot.feeds.replay import (
    ReplayDriver,
    decode_payload,
    detect_framing,
    inspect,
    read_entries,
    seconds_to_ns,
)


def replay_lines(lines: list[bytes], tmp_path: Path, name: str) -> Feed:
    """Play cryptofeed lines (as a `NAME.ws.1.0` beside the real `NAME.0`) and return the feed."""
    path = tmp_path / f"{name}.ws.1.0"
    path.write_bytes(b"".join(lines))
    shutil.copy(data_file(f"cryptofeed/{name}.0"), tmp_path / f"{name}.0")
    return replay_files([path])


def replay_files(paths: list[Path], venue: str | None = None) -> Feed:
    recs = [inspect(p, venue) for p in paths]
    clock = SimClock()
    feed = build_feed(recs[0].venue, recs[0].instruments, Bus(), clock)
    asyncio.run(ReplayDriver({recs[0].venue: feed}, clock, recs).run(progress=False))
    return feed


def test_framings_are_told_apart_by_the_first_line() -> None:
    assert detect_framing(data_file("cryptofeed/OKX.ws.1.0")) == "cryptofeed"
    assert detect_framing(data_file("binance_hftbacktest/spot/btcusdt_20240808.gz")) == \
        "hftbacktest"


def test_cryptofeed_times_become_exact_ns() -> None:
    assert seconds_to_ns(b"1618678132.3858151") == 1_618_678_132_385_815_100
    assert seconds_to_ns(b"1652459225") == 1_652_459_225_000_000_000


def test_byte_literal_frames_are_inflated() -> None:
    frame = b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[]}'
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = deflater.compress(frame) + deflater.flush()
    assert decode_payload(repr(raw).encode()) == frame
    with pytest.raises(DataError):
        decode_payload(b"b'not deflate'")


def test_byte_literal_frames_replay_like_text_ones(tmp_path: Path) -> None:
    lines = data_file("cryptofeed/OKX.ws.1.0").read_bytes().splitlines(keepends=True)
    packed = []
    for line in lines:
        ts, sep, payload = line.partition(b": ")
        if sep and b'"books"' in payload and not line.startswith(b"wss"):
            deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            raw = deflater.compress(payload.rstrip(b"\n")) + deflater.flush()
            line = ts + b": " + repr(raw).encode() + b"\n"
        packed.append(line)
    feed = replay_lines(packed, tmp_path, "OKX")
    assert sum(b.checksums_ok for b in feed.books.values()) == 290
    assert sum(b.checksums_failed for b in feed.books.values()) == 0


def test_rest_snapshots_are_merged_by_time_and_reach_parse_snapshot() -> None:
    path = data_file("cryptofeed/KUCOIN.ws.1.0")
    entries = list(read_entries(path))
    rest = [e for e in entries if e.kind == "rest"]
    assert len(rest) == 9
    assert [e.ts for e in entries] == sorted(e.ts for e in entries)


def test_instruments_come_from_the_recording_name_0_file() -> None:
    rec = inspect(data_file("cryptofeed/OKX.ws.1.0"))
    assert rec.venue == "okx" and rec.framing == "cryptofeed"
    assert sorted(str(i.id) for i in rec.instruments) == [
        "BTC-USD-220527.okx", "BTC-USDT.okx", "UNI-USD-PERP.okx"]


def test_cli_replay_reports_checksums(capsys: pytest.CaptureFixture[str]) -> None:
    path = data_file("cryptofeed/OKX.ws.1.0")
    assert main(["replay", str(path), "--venue", "okx", "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["checksums_ok"], summary["checksums_failed"]) == (290, 0)
    assert summary["books_valid"] and summary["parse_errors"] == 0


def test_tradebot_recording_replays_through_the_same_parser(tmp_path: Path) -> None:
    # The recorder's framing: header, sent frames, received frames, REST lines.
    src = data_file("cryptofeed/OKX.ws.1.0")
    sent = [e for e in read_entries(src) if e.kind == "sent"]
    out = [b"1 #tradebot venue=okx"]
    for body in (data_file("cryptofeed/OKX.0").read_bytes().splitlines()):
        url, sep, rest = body.partition(b" -> ")
        if sep:
            out.append(b"1 > " + url + b" " + rest.partition(b": ")[2])
    out += [b"%d < %s" % (e.ts, e.payload) for e in sent]
    out += [b"%d %s" % (e.ts, e.payload) for e in read_entries(src) if e.kind == "frame"]
    path = tmp_path / "okx-2022051316.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(out) + b"\n")
    assert detect_framing(path) == "tradebot"
    feed = replay_files([path])
    assert feed.venue == "okx"
    assert sum(b.checksums_ok for b in feed.books.values()) == 290
