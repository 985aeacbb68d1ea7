"""Loaders for the real market data the core kernel tests run on (skip when it is absent)."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime

import numpy as np

from tests.conftest import data_file

CANDLE_FILES = ("ETH_BTC-5m", "ADA_BTC-5m", "LTC_BTC-5m", "XRP_ETH-1m")


class Candles:
    """OHLCV columns of one candle file, as contiguous float64 arrays."""

    def __init__(self, name: str) -> None:
        path = data_file(f"candles/{name}.csv.gz")
        with gzip.open(path, "rt") as f:
            rows = list(csv.DictReader(f))
        self.name = name
        self.ts = np.array([int(datetime.fromisoformat(r["date"]).timestamp() * 1000)
                            for r in rows], dtype=np.int64)
        cols = [np.ascontiguousarray([float(r[k]) for r in rows])
                for k in ("open", "high", "low", "close", "volume")]
        self.open, self.high, self.low, self.close, self.volume = cols
        self.ohlcv = np.ascontiguousarray(np.column_stack(cols))


def xrp_eth_trades() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (ts ns, price, size, side) of the XRP/ETH aggregate trades (side +1 buy)."""
    with gzip.open(data_file("candles/XRP_ETH-trades.csv.gz"), "rt") as f:
        rows = list(csv.DictReader(f))
    ts = np.array([int(r["timestamp"]) * 1_000_000 for r in rows], dtype=np.int64)
    price = np.array([float(r["price"]) for r in rows])
    size = np.array([float(r["amount"]) for r in rows])
    side = np.array([1.0 if r["side"] == "buy" else -1.0 for r in rows])
    return ts, price, size, side


def binance_book_ticker(symbol: str = "btcusdt") -> np.ndarray:
    """Return Binance spot bookTicker updates as rows (bid, bid size, ask, ask size)."""
    path = data_file(f"binance_hftbacktest/spot/{symbol}_20240808.gz")
    rows = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if "@bookTicker" not in line:
                continue
            d = json.loads(line.split(" ", 1)[1])["data"]
            rows.append((float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"])))
    return np.ascontiguousarray(rows, dtype=np.float64)


def binance_trades(symbol: str = "btcusdt") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return Binance spot trades (price, size, side); side +1 when the buyer took liquidity."""
    path = data_file(f"binance_hftbacktest/spot/{symbol}_20240808.gz")
    price, size, side = [], [], []
    with gzip.open(path, "rt") as f:
        for line in f:
            if "@trade" not in line:
                continue
            d = json.loads(line.split(" ", 1)[1])["data"]
            price.append(float(d["p"]))
            size.append(float(d["q"]))
            side.append(-1.0 if d["m"] else 1.0)
    return np.array(price), np.array(size), np.array(side)


def binance_events(symbol: str = "btcusdt") -> list[tuple[str, tuple[float, ...]]]:
    """Return bookTicker ("book": bid, bid size, ask, ask size) and trade ("trade": price,
    size, side) events in the order they were received."""
    path = data_file(f"binance_hftbacktest/spot/{symbol}_20240808.gz")
    events: list[tuple[str, tuple[float, ...]]] = []
    with gzip.open(path, "rt") as f:
        for line in f:
            if "@bookTicker" in line:
                d = json.loads(line.split(" ", 1)[1])["data"]
                events.append(("book", (float(d["b"]), float(d["B"]), float(d["a"]),
                                        float(d["A"]))))
            elif "@trade" in line:
                d = json.loads(line.split(" ", 1)[1])["data"]
                events.append(("trade", (float(d["p"]), float(d["q"]),
                                         -1.0 if d["m"] else 1.0)))
    return events
