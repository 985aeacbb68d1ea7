"""`tradebot features CANDLES.csv`: every bar indicator over an OHLCV file, batch or incremental.

The input has the header `date,open,high,low,close,volume` (`date` ISO 8601 or epoch
milliseconds, strictly increasing; a `.gz` file is read through gzip). The output repeats the
input columns as they were written and adds one column per bar feature with default
parameters, named as `core.fused_layout` names them (`rsi_14`, `macd_12_26_9`, ...); values
are the shortest text that reads back as the same float, empty while a feature warms up.
The batch path runs the batch kernels over whole columns; `--incremental` feeds the rows one at
a time to the fused incremental kernel; both give the same file.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

from tradebot.cli.exits import EX_DATAERR, EX_NOINPUT, EX_OK
from tradebot.core import fused
from tradebot.core import indicators as ind
from tradebot.core import indicators_adx as adx
from tradebot.core import indicators_stats as stats
from tradebot.core import indicators_stoch as sto
from tradebot.core import indicators_trend as trend
from tradebot.core import indicators_volume as vol
from tradebot.core.fused_layout import BarFeatureParams, bar_layout
from tradebot.errors import DataError

HEADER = ("date", "open", "high", "low", "close", "volume")
_WHY = {
    fused.NOT_FINITE: "a price or the volume is not a finite number",
    fused.NEGATIVE: "low must be > 0 and volume >= 0",
    fused.INCONSISTENT: "high is below low, or open or close lies outside [low, high]",
}


@dataclass(frozen=True, slots=True)
class CandleFile:
    """The rows of an OHLCV file: the original text, epoch ms, and OHLCV as float64."""

    rows: list[list[str]]
    ts_ms: np.ndarray
    ohlcv: np.ndarray


def parse_date(text: str) -> int:
    """Return epoch milliseconds of an ISO 8601 date (UTC when no offset) or of epoch ms."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _open_text(path: Path) -> TextIO:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _row(fields: list[str], line: int) -> tuple[int, list[float]]:
    if len(fields) != len(HEADER):
        raise DataError(f"line {line}: expected {len(HEADER)} fields, got {len(fields)}")
    try:
        ts = parse_date(fields[0])
    except ValueError:
        raise DataError(f"line {line}: date {fields[0]!r} is neither ISO 8601 nor "
                        "epoch milliseconds") from None
    try:
        values = [float(x) for x in fields[1:]]
    except ValueError:
        raise DataError(f"line {line}: open, high, low, close and volume must be "
                        f"numbers, got {','.join(fields[1:])!r}") from None
    code = fused.check_bar(np.array(values))
    if code != fused.OK:
        raise DataError(f"line {line}: {_WHY[code]}")
    return ts, values


def read_candles(path: Path) -> CandleFile:
    """Read and check an OHLCV CSV; raise DataError naming the line of the first bad row."""
    rows: list[list[str]] = []
    stamps: list[int] = []
    values: list[list[float]] = []
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header] != list(HEADER):
                raise DataError(f"line 1: header must be {','.join(HEADER)}, "
                                f"got {','.join(header or [])!r}")
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                ts, row = _row(fields, line)
                if stamps and ts <= stamps[-1]:
                    raise DataError(f"line {line}: date {fields[0]!r} is not after the "
                                    "previous row's (rows must be sorted, without duplicates)")
                rows.append(fields)
                stamps.append(ts)
                values.append(row)
    except (gzip.BadGzipFile, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"unreadable: {exc}") from exc
    ohlcv = np.array(values, dtype=np.float64).reshape(len(values), 5)
    return CandleFile(rows, np.array(stamps, dtype=np.int64), np.ascontiguousarray(ohlcv))


def batch_features(p: BarFeatureParams, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                   volume: np.ndarray) -> list[np.ndarray]:
    """Return every bar feature from the batch kernels, in the layout's order."""
    h, lo, c, v = high, low, close, volume
    return [
        ind.sma(c, p.sma), ind.ema(c, p.ema), ind.wma(c, p.wma), ind.rsi(c, p.rsi),
        *trend.macd(c, *p.macd), trend.atr(h, lo, c, p.atr), *stats.bollinger(c, *p.bollinger),
        *trend.supertrend(h, lo, c, *p.supertrend), *sto.stoch(h, lo, c, *p.stoch),
        *adx.adx(h, lo, c, p.adx), vol.obv(c, v), *vol.vwap(h, lo, c, v, p.vwap),
        stats.realized_vol(c, p.realized_vol), stats.zscore(c, p.zscore), stats.roc(c, p.roc),
    ]


def compute(ohlcv: np.ndarray, incremental: bool,
            params: BarFeatureParams | None = None) -> np.ndarray:
    """Return the features of every row, shape (rows, features), by either path."""
    p = params or BarFeatureParams()
    layout = bar_layout(p)
    out = np.full((ohlcv.shape[0], len(layout.names)), np.nan)
    if ohlcv.shape[0] == 0:
        return out
    if incremental:
        rejected = fused.update_bars(layout.new_state(), ohlcv, out)
        if rejected:
            raise DataError(f"{rejected} rows were refused by the incremental kernel")
        return out
    cols = [np.ascontiguousarray(ohlcv[:, j]) for j in (1, 2, 3, 4)]
    for j, column in enumerate(batch_features(p, *cols)):
        out[:, j] = column
    return out


def _cell(x: float) -> str:
    return "" if math.isnan(x) else repr(x)


def _lines(candles: CandleFile, features: np.ndarray) -> Iterator[list[str]]:
    for fields, row in zip(candles.rows, features.tolist(), strict=True):
        yield fields + [_cell(x) for x in row]


def write_features(out: TextIO, candles: CandleFile, features: np.ndarray) -> None:
    """Write the input columns and one column per feature."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*HEADER, *bar_layout().names])
    writer.writerows(_lines(candles, features))


def write(path: Path, out_path: Path | None, incremental: bool) -> int:
    """Compute the features of `path` into `out_path` (stdout when None); return the rows.

    Raise FileNotFoundError for a missing input and DataError for a malformed one.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    candles = read_candles(path)
    features = compute(candles.ohlcv, incremental)
    if out_path is None:
        write_features(sys.stdout, candles, features)
    else:
        with out_path.open("w", encoding="utf-8", newline="") as out:
            write_features(out, candles, features)
    return len(candles.rows)



def features(args: argparse.Namespace) -> int:
    """Run `tradebot features`; return the exit status."""
    try:
        write(args.file, args.out, args.incremental)
    except FileNotFoundError as exc:
        print(f"tradebot: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except DataError as exc:
        print(f"tradebot: {args.file}: {exc}", file=sys.stderr)
        return EX_DATAERR
    return EX_OK
