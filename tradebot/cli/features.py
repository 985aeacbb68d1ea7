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
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from tradebot.cli.args import input_problem
from tradebot.cli.exits import EX_DATAERR, EX_NOINPUT, EX_OK
from tradebot.core.fused_layout import bar_layout
from tradebot.errors import DataError
from tradebot.features.candles import HEADER, CandleFile, compute, read_candles


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
    if problem := input_problem(args.file):
        print(f"tradebot: {problem}", file=sys.stderr)
        return EX_NOINPUT
    try:
        write(args.file, args.out, args.incremental)
    except FileNotFoundError as exc:
        print(f"tradebot: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except DataError as exc:
        print(f"tradebot: {args.file}: {exc}", file=sys.stderr)
        return EX_DATAERR
    return EX_OK
