"""OHLCV candle files and the bar features over them, batch or incremental.

The input has the header `date,open,high,low,close,volume` (`date` ISO 8601 or epoch
milliseconds, strictly increasing; a `.gz` file is read through gzip). `compute` gives one
column per bar feature with default parameters, named as `core.fused_layout` names them: the
batch path runs the batch kernels over whole columns, the incremental one feeds the rows one
at a time to the fused kernel the daemon runs live; both give the same values (a test checks).
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

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
