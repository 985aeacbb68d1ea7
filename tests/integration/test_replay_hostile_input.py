"""`tradebot replay` on damaged recordings and on a line stamped an hour ahead (issue 9).

A damaged gzip file plays up to its damage, the files after it play, the summary names the
damage, and the exit code is 65; one bad receive time is counted and does not move the clock.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, data_file
from tradebot.cli import main

SPOT = "binance_hftbacktest/spot/{}_20240808.gz"
BTC_MESSAGES, ETH_MESSAGES = 41249, 33618


def run_replay(*files: Path) -> tuple[int, dict | None, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tradebot", "replay", "--json", "--no-progress",
         *map(str, files)], cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, summary, proc.stderr


def events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("cut", [300_000, 900_001])
def test_a_cut_recording_plays_up_to_the_cut_then_the_next_file_and_exits_65(
        tmp_path: Path, cut: int) -> None:
    damaged = tmp_path / "btcusdt_cut.gz"
    damaged.write_bytes(data_file(SPOT.format("btcusdt")).read_bytes()[:cut])
    rc, summary, stderr = run_replay(damaged, data_file(SPOT.format("ethusdt")))
    assert rc == 65, stderr
    assert summary is not None and "Traceback" not in stderr
    assert ETH_MESSAGES < summary["messages"] < BTC_MESSAGES + ETH_MESSAGES
    assert summary["damaged"] == [{"file": str(damaged), "offset": cut,
                                   "error": summary["damaged"][0]["error"]}]
    assert "cut short" in summary["damaged"][0]["error"]
    logged = [e for e in events(stderr) if e["event"] == "recording_damaged"]
    assert [(e["file"], e["offset"]) for e in logged] == [(str(damaged), cut)]


def test_corrupt_bytes_in_the_middle_end_that_file_with_a_summary_and_65(
        tmp_path: Path) -> None:
    raw = bytearray(data_file(SPOT.format("ethusdt")).read_bytes())
    raw[500_000:500_016] = b"\x00" * 16
    damaged = tmp_path / "ethusdt_flipped.gz"
    damaged.write_bytes(bytes(raw))
    rc, summary, stderr = run_replay(damaged)
    assert rc == 65 and summary is not None and "Traceback" not in stderr, stderr
    assert 0 < summary["messages"] < ETH_MESSAGES
    (damage,) = summary["damaged"]
    assert damage["file"] == str(damaged) and damage["offset"] >= 500_000
    assert "corrupt gzip data" in damage["error"]


def test_garbage_after_the_gzip_header_exits_65_naming_the_file(tmp_path: Path) -> None:
    damaged = tmp_path / "garbage.gz"
    damaged.write_bytes(data_file(SPOT.format("ethusdt")).read_bytes()[:10] + b"\xfe" * 4096)
    rc, summary, stderr = run_replay(damaged)
    assert rc == 65 and "Traceback" not in stderr, stderr
    assert summary is None  # nothing in it could be played
    (error,) = [e for e in events(stderr) if e["event"] == "input_invalid"]
    assert str(damaged) in error["error"] and "corrupt gzip data" in error["error"]


def test_a_clean_recording_reports_no_damage_and_no_clock_jump(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--json", "--no-progress",
                 str(data_file(SPOT.format("ethusdt")))]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["damaged"] == [] and summary["clock_jumps"] == 0


def test_a_line_stamped_an_hour_ahead_is_counted_and_changes_no_order_or_fill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz")
    with gzip.open(source, "rb") as fh:
        lines = fh.read().split(b"\n")
    ts, _, payload = lines[20_000].partition(b" ")
    lines[20_000] = b"%d %s" % (int(ts) + 3600 * 10**9, payload)
    stamped = tmp_path / "btcusdt_stamped.gz"
    stamped.write_bytes(gzip.compress(b"\n".join(lines)))

    def replay(path: Path) -> dict:
        assert main(["replay", "--json", "--no-progress", str(path)]) == 0
        return json.loads(capsys.readouterr().out)

    clean, jumped = replay(source), replay(stamped)
    assert clean["orders"] >= 1 and clean["fills"] >= 1
    assert jumped["clock_jumps"] == 1 and clean["clock_jumps"] == 0
    for key in ("messages", "orders", "denied", "fills", "fills_sha256", "final_equity"):
        assert jumped[key] == clean[key], key
