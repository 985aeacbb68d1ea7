"""Shared fixtures: the real-data directory, a metrics reader, a SimClock pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Return the shared data directory ($TRADEBOT_DATA_DIR or ../shared/data)."""
    return Path(os.environ.get("TRADEBOT_DATA_DIR", REPO.parent / "shared" / "data"))


def data_file(relative: str) -> Path:
    """Return a file under the data directory, skipping the test when it is absent."""
    path = data_dir() / relative
    if not path.exists():
        pytest.skip(f"recording {relative} not found under {data_dir()} (set TRADEBOT_DATA_DIR)")
    return path


def metric(name: str, **labels: str) -> float:
    """Return the current value of a metric sample (0 when absent)."""
    value = REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


BINANCE_FILES = [
    "spot/btcusdt_20240808.gz", "spot/ethusdt_20240808.gz",
    "usdm/btcusdt_20240808.gz", "usdm/ethusdt_20240808.gz",
    "cm/btcusd_perp_20240808.gz", "cm/ethusd_perp_20240808.gz",
]
