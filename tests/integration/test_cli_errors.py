"""Hostile and mistaken command lines as a shell runs them: a clear message and the README's
exit code (2 usage, 65 bad data, 66 missing input, 78 bad config), never a traceback."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, data_file
from tradebot.cli import main

RECORDING = "binance_hftbacktest/usdm/ethusdt_20240808.gz"


def tradebot(*args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    environ["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "tradebot", *args], capture_output=True,
                            text=True, env={**environ, **(env or {})}, timeout=120,
                            cwd=cwd or REPO, check=False)
    # A traceback may only travel inside a JSON event, never as lines of its own.
    assert not any(line.startswith(("Traceback", "  File "))
                   for line in (result.stdout + result.stderr).splitlines())
    return result


def events(text: str) -> list[dict]:
    """Parse every line as a JSON log event (a plain or multi-line traceback fails here)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def short_recording(tmp_path: Path, lines: int = 3000) -> Path:
    path = tmp_path / "short.gz"
    with gzip.open(data_file(RECORDING), "rb") as fin, gzip.open(path, "wb") as fout:
        fout.writelines(next(fin) for _ in range(lines))
    return path


def test_nan_from_the_environment_is_exit_78_for_check_config_and_replay(
        tmp_path: Path) -> None:
    env = {"TRADEBOT_FEATURES__BAR_INTERVAL_S": "nan"}
    checked = tradebot("check-config", env=env)
    assert checked.returncode == 78
    assert ("TRADEBOT_FEATURES__BAR_INTERVAL_S: features.bar_interval_s: expected a finite "
            "number, got nan") in checked.stderr
    replayed = tradebot("replay", "--json", str(short_recording(tmp_path)), env=env)
    assert replayed.returncode == 78 and replayed.stdout == ""
    (event,) = events(replayed.stderr)
    assert event["event"] == "config_invalid" and event["key"] == "features.bar_interval_s"
    assert "TRADEBOT_FEATURES__BAR_INTERVAL_S" in event["source"]


@pytest.mark.parametrize("speed", ["nan", "inf", "-1", "fast"])
def test_a_speed_that_is_not_a_finite_non_negative_number_is_a_usage_error(
        tmp_path: Path, speed: str) -> None:
    result = tradebot("replay", "--speed", speed, str(tmp_path / "any.gz"))
    assert result.returncode == 2
    assert f"argument --speed: '{speed}'" in result.stderr


def test_a_directory_or_non_utf8_file_as_config_is_exit_78_naming_it(tmp_path: Path) -> None:
    result = tradebot("check-config", str(tmp_path))
    assert result.returncode == 78
    assert f"{tmp_path}: is a directory, not a config file" in result.stderr
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[paper]\naccount_currency = "€"\n'.encode("cp1252"))
    result = tradebot("--config", str(latin1), "run")
    assert result.returncode == 78
    (event,) = events(result.stderr)
    assert event["event"] == "config_invalid" and str(latin1) in event["error"]
    assert "not UTF-8" in event["error"]


def test_replay_db_takes_a_plain_path_as_sqlite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "x.sqlite3"
    args = ["replay", "--json", "--no-progress", "--db", str(db), str(short_recording(tmp_path))]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["messages"] == 3000
    assert db.stat().st_size > 0


def test_replay_db_in_a_missing_directory_is_a_usage_error_and_creates_nothing(
        tmp_path: Path) -> None:
    recording = str(short_recording(tmp_path, 10))
    for db in (tmp_path / "no" / "such" / "x.sqlite3", f"sqlite:///{tmp_path}/no/such/x.db"):
        result = tradebot("replay", "--db", str(db), recording)
        assert result.returncode == 2
        assert f"directory {tmp_path / 'no' / 'such'} does not exist" in result.stderr
        assert not (tmp_path / "no").exists()
    result = tradebot("replay", "--db", str(tmp_path), recording)
    assert result.returncode == 2 and "is a directory" in result.stderr


def test_replay_or_serve_a_directory_is_exit_66_naming_it(tmp_path: Path) -> None:
    for args in (["replay", "--json", str(tmp_path)], ["serve-recording", str(tmp_path)]):
        result = tradebot(*args)
        assert result.returncode == 66
        (event,) = events(result.stderr if args[0] == "replay" else result.stdout)
        assert event["event"] == "input_missing"
        assert event["error"] == f"{tmp_path}: is a directory, not a file"


def test_features_out_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    candles = tmp_path / "good.csv"
    candles.write_text("date,open,high,low,close,volume\n"
                       "1700000000000,1,2,0.5,1.5,10\n1700000060000,1.5,2,1,1.8,12\n")
    result = tradebot("features", str(candles), "--out", str(tmp_path))
    assert result.returncode == 2
    assert f"--out {tmp_path}: is a directory; name the output file" in result.stderr
    result = tradebot("features", str(tmp_path))
    assert result.returncode == 66 and f"{tmp_path}: is a directory" in result.stderr
    assert tradebot("features", str(candles), "--out", str(tmp_path / "f.csv")).returncode == 0


def test_a_database_driver_that_is_not_installed_is_exit_78_for_check_config_and_run(
        tmp_path: Path) -> None:
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    path = tmp_path / "pg.toml"
    path.write_text('[state]\ndatabase_url = "postgresql+psycopg://bot:secret@db/tradebot"\n')
    for args in (["check-config", str(path)], ["--config", str(path), "run"]):
        result = tradebot(*args)
        assert result.returncode == 78, result.stderr
        text = result.stderr + result.stdout
        assert "state.database_url: database driver 'psycopg' for postgresql" in text
        assert "secret" not in text


def test_an_unresolvable_server_host_is_exit_78_for_check_config_and_run(
        tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_text(f'[server]\nhost = "nonexistent.invalid"\n[state]\ndir = "{tmp_path}"\n'
                    '[log]\nformat = "json"\n')
    checked = tradebot("check-config", str(path))
    assert checked.returncode == 78
    assert f"{path}: server.host: cannot resolve 'nonexistent.invalid'" in checked.stderr
    ran = tradebot("--config", str(path), "run")
    assert ran.returncode == 78
    assert [e["event"] for e in events(ran.stdout)][-1] == "config_invalid"


def test_an_unexpected_error_is_one_json_event_with_the_traceback_and_exit_1(
        tmp_path: Path) -> None:
    not_a_db = tmp_path / "notes.sqlite3"
    not_a_db.write_text("this is not a database\n" * 100)
    result = tradebot("replay", "--json", "--no-progress", "--db", str(not_a_db),
                      str(short_recording(tmp_path, 10)))
    assert result.returncode == 1 and result.stdout == ""
    failed = [e for e in events(result.stderr) if e["event"] == "command_failed"]
    assert len(failed) == 1 and failed[0]["level"] == "critical"
    assert failed[0]["exception"].startswith("Traceback (most recent call last)")
    assert "file is not a database" in failed[0]["error"]
