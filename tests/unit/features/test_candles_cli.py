"""`tradebot features`: batch and incremental give the same file; bad input names its line."""

from __future__ import annotations

import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import data_file
from tests.unit.core.realdata import Candles
from tradebot.cli import main
from tradebot.core.fused_layout import bar_layout
from tradebot.features.candles import HEADER, compute, parse_date, read_candles

CANDLES = ("XRP_ETH-1m", "ETH_BTC-5m")


def run_cli(tmp_path: Path, src: Path, *extra: str) -> tuple[int, Path]:
    out = tmp_path / ("inc.csv" if "--incremental" in extra else "batch.csv")
    return main(["features", str(src), "--out", str(out), *extra]), out


@pytest.mark.parametrize("name", CANDLES)
def test_batch_and_incremental_write_the_same_file_for_real_candles(tmp_path: Path,
                                                                    name: str) -> None:
    src = data_file(f"candles/{name}.csv.gz")
    code_b, batch = run_cli(tmp_path, src)
    code_i, inc = run_cli(tmp_path, src, "--incremental")
    assert (code_b, code_i) == (0, 0)
    assert batch.read_bytes() == inc.read_bytes()
    with batch.open() as f:
        rows = list(csv.reader(f))
    names = bar_layout().names
    assert tuple(rows[0]) == (*HEADER, *names)
    for expected in ("rsi_14", "ema_20", "macd_12_26_9", "macd_signal_12_26_9",
                     "macd_hist_12_26_9", "atr_14", "bb_upper_20_2", "bb_lower_20_2",
                     "supertrend_10_3", "adx_14"):
        assert expected in rows[0]
    with gzip.open(src, "rt") as f:
        original = list(csv.reader(f))
    assert [r[:6] for r in rows] == original  # input columns as written
    rsi = rows[0].index("rsi_14")
    assert all(r[rsi] == "" for r in rows[1:15])  # 14 rows without a value, then numbers
    assert all(0.0 <= float(r[rsi]) <= 100.0 for r in rows[15:])


def test_output_values_are_the_batch_kernels_exactly() -> None:
    k = Candles("LTC_BTC-5m")
    batch = compute(k.ohlcv, incremental=False)
    inc = compute(k.ohlcv, incremental=True)
    np.testing.assert_array_equal(batch, inc)
    ema = bar_layout().index("ema_20")
    assert math.isnan(batch[18, ema])
    assert batch[19, ema] == pytest.approx(k.close[:20].mean(), rel=1e-12)


def test_epoch_milliseconds_and_iso_dates_read_the_same() -> None:
    assert parse_date("1637971200000") == parse_date("2021-11-27 00:00:00+00:00") == \
        parse_date("2021-11-27T00:00:00") == 1637971200000


def write(tmp_path: Path, lines: list[str], name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = ["date,open,high,low,close,volume", "1637971200000,1.0,1.2,0.9,1.1,10",
        "1637971260000,1.1,1.3,1.0,1.2,5"]


@pytest.mark.parametrize(("bad_line", "row", "message"), [
    (3, "1637971260000,1.1,1.3,1.0", "expected 6 fields"),
    (3, "yesterday,1.1,1.3,1.0,1.2,5", "neither ISO 8601"),
    (3, "1637971260000,1.1,abc,1.0,1.2,5", "must be numbers"),
    (3, "1637971260000,1.1,1.3,1.0,nan,5", "not a finite number"),
    (3, "1637971260000,1.1,1.3,1.0,1.2,-5", "volume >= 0"),
    (3, "1637971260000,1.1,0.9,1.0,1.2,5", "high is below low"),
    (3, "1637971200000,1.1,1.3,1.0,1.2,5", "not after the previous row"),
    (3, "1637971100000,1.1,1.3,1.0,1.2,5", "not after the previous row"),
])
def test_a_bad_row_exits_65_naming_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            bad_line: int, row: str, message: str) -> None:
    src = write(tmp_path, [*GOOD[:2], row, GOOD[2].replace("1637971260000", "1637971320000")])
    code, out = run_cli(tmp_path, src)
    err = capsys.readouterr().err
    assert code == 65
    assert f"line {bad_line}: " in err and message in err
    assert not out.exists()


def test_a_wrong_header_is_line_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path, ["timestamp,open,high,low,close,volume", *GOOD[1:]])
    assert run_cli(tmp_path, src)[0] == 65
    assert "line 1: header must be date,open,high,low,close,volume" in capsys.readouterr().err


def test_a_file_without_a_header_names_line_1(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # The Binance kline dumps carry no header (and twelve columns): not this command's input.
    src = data_file("candles/ADABTC-1m-2021-11-27.csv")
    assert run_cli(tmp_path, src)[0] == 65
    assert "line 1: header must be" in capsys.readouterr().err


def test_a_missing_file_exits_66(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, tmp_path / "absent.csv")[0] == 66
    assert "absent.csv" in capsys.readouterr().err


def test_a_corrupt_gzip_exits_65(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gzip.compress("\n".join(GOOD).encode())[:30])
    assert run_cli(tmp_path, path)[0] == 65


def test_a_plain_csv_goes_to_stdout_without_out(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = write(tmp_path, GOOD)
    assert main(["features", str(src)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[1].startswith(GOOD[1] + ",")
    assert read_candles(src).ts_ms.tolist() == [1637971200000, 1637971260000]
