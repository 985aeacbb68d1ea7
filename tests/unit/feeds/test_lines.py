"""Reading recorded files: damage stops reading where it starts, and one bad stamp does not
move the clock."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from tests.conftest import data_file
from tradebot.clock import SimClock
from tradebot.errors import DataError
from tradebot.feeds.lines import (
    Damage,
    RecordingDamaged,
    find_damage,
    read_lines,
    steady_times,
)
from tradebot.feeds.replay import ReplayDriver, read_entries

SOURCE = "binance_hftbacktest/spot/ethusdt_20240808.gz"


def clean_lines() -> list[tuple[int, bytes]]:
    return list(read_lines(data_file(SOURCE)))


@pytest.mark.parametrize("cut", [40, 5_000, 200_000, 1_000_003])
def test_a_gzip_file_cut_short_plays_its_complete_lines_and_names_the_cut(
        tmp_path: Path, cut: int) -> None:
    clean = clean_lines()
    path = tmp_path / "cut.gz"
    path.write_bytes(data_file(SOURCE).read_bytes()[:cut])
    damaged: list[Damage] = []
    lines = list(read_lines(path, damaged=damaged))
    assert lines == clean[:len(lines)]  # a prefix, and no half line at the end
    assert len(lines) < len(clean)
    assert damaged == [Damage(str(path), cut, damaged[0].error)]
    assert "cut short or is still being written" in damaged[0].error


def test_flipped_bytes_are_found_as_corrupt_gzip_data(tmp_path: Path) -> None:
    # Corrupt data may inflate to garbage lines before zlib notices; find_damage reads on to
    # the damage, which the replay then blames for the garbage.
    raw = bytearray(data_file(SOURCE).read_bytes())
    for i in range(300_000, 300_040):
        raw[i] ^= 0xFF
    path = tmp_path / "flipped.gz"
    path.write_bytes(bytes(raw))
    damage = find_damage(path)
    assert damage is not None and damage.file == str(path)
    assert 300_000 <= damage.offset <= len(raw) and "corrupt gzip data" in damage.error
    assert find_damage(data_file(SOURCE)) is None


def test_garbage_after_the_gzip_header_yields_nothing_and_is_named(tmp_path: Path) -> None:
    path = tmp_path / "garbage.gz"
    path.write_bytes(data_file(SOURCE).read_bytes()[:10] + b"\xff" * 5000)
    damaged: list[Damage] = []
    assert list(read_lines(path, damaged=damaged)) == []
    assert len(damaged) == 1 and "corrupt gzip data" in damaged[0].error


def test_without_a_sink_damage_is_a_data_error_naming_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(data_file(SOURCE).read_bytes()[:5000])
    with pytest.raises(DataError, match=r"cut\.gz: unreadable after byte 5000"):
        list(read_lines(path))
    with pytest.raises(RecordingDamaged):
        list(read_lines(path))


def test_appended_gzip_members_and_zero_padding_read_as_one_file(tmp_path: Path) -> None:
    path = tmp_path / "members.gz"
    for n in range(3):  # `tradebot record` appends a member each time it opens the file
        with gzip.open(path, "ab") as fh:
            fh.write(b"%d {\"n\":%d}\n" % (n + 1, n))
    path.write_bytes(path.read_bytes() + b"\x00" * 100)
    damaged: list[Damage] = []
    assert list(read_lines(path, damaged=damaged)) == [
        (1, b'{"n":0}'), (2, b'{"n":1}'), (3, b'{"n":2}')]
    assert damaged == []


def test_the_hour_file_still_being_written_plays_everything_flushed(tmp_path: Path) -> None:
    # What `tradebot record` leaves on disk mid-hour: flushed data, no gzip trailer yet.
    lines = [b"1 #tradebot venue=binance", b'2 {"a":1}', b'3 < {"sub":1}', b'4 {"b":2}']
    deflate = zlib.compressobj(wbits=31)
    body = deflate.compress(b"\n".join(lines) + b"\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
    path = tmp_path / "binance-20240808T10.gz"
    path.write_bytes(body + b"\x00\x01")  # and half of the next write
    damaged: list[Damage] = []
    entries = list(read_entries(path, "tradebot", damaged))
    assert [(e.ts, e.kind) for e in entries] == [
        (1, "connect"), (2, "frame"), (3, "sent"), (4, "frame")]
    assert len(damaged) == 1 and damaged[0].offset == len(body) + 2


def play(stamps: list[int], limit: int = 10) -> tuple[list[int], list[tuple[int, int]]]:
    jumps: list[tuple[int, int]] = []
    played = steady_times(((ts, i) for i, ts in enumerate(stamps)), limit,
                          lambda stamped, prev: jumps.append((stamped, prev)))
    return [ts for ts, _ in played], jumps


def test_one_line_stamped_far_ahead_plays_at_the_time_before_it() -> None:
    assert play([100, 101, 5000, 102, 103]) == ([100, 101, 101, 102, 103], [(5000, 101)])


def test_one_line_stamped_far_behind_plays_at_the_time_before_it() -> None:
    assert play([100, 101, 3, 102]) == ([100, 101, 101, 102], [(3, 101)])


def test_a_pause_in_the_stream_is_not_a_jump() -> None:
    # The line after the gap agrees with it: the stream moved on; nothing is counted.
    assert play([100, 101, 5000, 5001, 5002]) == ([100, 101, 5000, 5001, 5002], [])


def test_a_jumped_last_line_and_two_outliers_in_a_row_are_each_held() -> None:
    assert play([100, 5000]) == ([100, 100], [(5000, 100)])
    assert play([100, 5000, 9000, 101]) == ([100, 100, 100, 101], [(5000, 100), (9000, 100)])
    assert play([]) == ([], [])


@pytest.mark.parametrize("limit", [0.0, -1.0, float("nan"), float("inf")])
def test_the_clock_jump_limit_must_be_a_positive_number_of_seconds(limit: float) -> None:
    with pytest.raises(ValueError, match="max_clock_jump_s must be > 0"):
        ReplayDriver({}, SimClock(), [], max_clock_jump_s=limit)
