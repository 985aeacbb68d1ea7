"""`tradebot replay` end to end: the whole pipeline on real recordings."""

from __future__ import annotations

import gzip
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import data_file
from tradebot.cli import main

FIELDS = {"messages", "gaps", "resyncs", "parse_errors", "books_valid", "orders", "fills",
          "final_equity", "fills_sha256", "messages_per_second"}


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["replay", "--json", "--no-progress", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_replay_trades_end_to_end_and_is_deterministic(
        capsys: pytest.CaptureFixture[str]) -> None:
    path = str(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"))
    first = replay(capsys, path)
    assert set(first) >= FIELDS
    assert first["messages"] == 93954 and first["gaps"] == 0 and first["books_valid"]
    assert first["parse_errors"] == 0
    assert first["orders"] >= 1 and first["fills"] >= 1  # the default ema_cross traded
    assert Decimal(first["final_equity"]) != Decimal(10000)
    second = replay(capsys, path)
    assert second["fills_sha256"] == first["fills_sha256"]
    assert second["final_equity"] == first["final_equity"]


def test_several_files_play_as_one_stream(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(data_file(f"binance_hftbacktest/spot/{s}_20240808.gz"))
             for s in ("btcusdt", "ethusdt")]
    result = replay(capsys, *files)
    assert result["messages"] == 41249 + 33618
    assert set(result["books"]) == {"BTC-USDT.binance", "ETH-USDT.binance"}
    assert result["gaps"] == 0


def test_speed_paces_playback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = data_file("binance_hftbacktest/usdm/ethusdt_20240808.gz")
    short = tmp_path / "short.gz"
    with gzip.open(src, "rb") as fin, gzip.open(short, "wb") as fout:
        lines = [next(fin) for _ in range(3000)]
        fout.writelines(lines)
    span_s = (int(lines[-1].split()[0]) - int(lines[0].split()[0])) / 1e9
    started = time.monotonic()
    result = replay(capsys, str(short), "--speed", "20")
    took = time.monotonic() - started
    assert result["messages"] == 3000
    assert took >= span_s / 20 * 0.9  # paced, not as fast as possible


def test_missing_and_malformed_inputs_have_clear_exit_codes(tmp_path: Path) -> None:
    assert main(["replay", "--json", str(tmp_path / "nope.gz")]) == 66
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a recording\n")
    assert main(["replay", "--json", str(bad)]) == 65


def test_a_second_replay_into_the_same_database_continues_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    from tests.conftest import metric

    path = str(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"))
    db = tmp_path / "shared.sqlite3"
    args = ("--strategy", "quoting", "--db", f"sqlite:///{db}", path)
    errors = metric("tradebot_store_write_errors_total")
    first = replay(capsys, *args)
    second = replay(capsys, *args)  # same recording, same clock: ids must not repeat
    assert first["fills"] > 0 and second["fills"] > 0
    assert metric("tradebot_store_write_errors_total") == errors
    conn = sqlite3.connect(db)
    fills = conn.execute("select count(*), count(distinct fill_id) from fills").fetchone()
    conn.close()
    assert fills[0] == fills[1] == first["fills"] + second["fills"]
