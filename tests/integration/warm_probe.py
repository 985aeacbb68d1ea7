"""Run by test_warmup_covers_the_daemon in a fresh process: warm the daemon's kernels, then
replay every venue's recording with every strategy and print, as a JSON list, the kernels
that gained a compiled signature afterwards, compiled or loaded from the cache (empty: the
warm-up covered the daemon)."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import pkgutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from numba.core.registry import CPUDispatcher

from tests.integration.test_replay_server_venues import (
    bybit_dump,
    coinbase_exchange_session,
    kucoin_session,
)
from tradebot.app import App
from tradebot.clock import SimClock
from tradebot.config import StrategyConfig, load_config
from tradebot.core.warmup import warmup_daemon
from tradebot.domain import Instrument
from tradebot.feeds.instruments import resolve
from tradebot.feeds.replay import Recording, inspect

DATA_FILES = ["binance_hftbacktest/usdm/btcusdt_20240808.gz",
              "binance_hftbacktest/spot/ethusdt_20240808.gz",
              "cryptofeed/BINANCE_DELIVERY.ws.1.0", "cryptofeed/KRAKEN.ws.48.0",
              "cryptofeed/KRAKEN_FUTURES.ws.1.0", "cryptofeed/OKX.ws.1.0"]


def recordings(data: Path, tmp: Path) -> list[tuple[Recording, list[Instrument]]]:
    config = load_config(environ={})
    out = []
    for relative in DATA_FILES:
        rec = inspect(data / relative)
        insts = rec.instruments or [i for i in config.instrument_map().values()
                                    if i.id.venue == rec.venue
                                    and i.venue_symbol in rec.depth_symbols]
        out.append((rec, insts))
    for make in (bybit_dump, kucoin_session):
        path, insts = make(tmp)
        out.append((inspect(path), insts))
    path = coinbase_exchange_session(tmp)
    rec = inspect(path)
    out.append((rec, rec.instruments))
    return out


def signatures() -> dict[str, int]:
    """Return the compiled signature count of every kernel in tradebot.core."""
    import tradebot.core

    counts = {}
    for info in pkgutil.iter_modules(tradebot.core.__path__):
        module = importlib.import_module(f"tradebot.core.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and obj.__module__ == module.__name__:
                counts[f"{module.__name__}.{name}"] = len(obj.signatures)
    return counts


def probe(data: Path, warm: Callable[[], object] = warmup_daemon) -> list[str]:
    base = load_config(environ={})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        runs = recordings(data, tmp)
        warm()
        before = signatures()
        for n, (rec, insts) in enumerate(runs):
            for kind in ("ema_cross", "quoting"):
                config = dataclasses.replace(
                    base, strategies=[StrategyConfig(name=kind, kind=kind)],
                    state=dataclasses.replace(
                        base.state, database_url=f"sqlite:///{tmp}/{n}-{kind}.sqlite3"))
                app = App(config, SimClock(),
                          instruments=resolve(config, feeds={rec.venue: insts}))
                asyncio.run(app.run_replay([rec], progress=False))
    after = signatures()
    return sorted(name for name, count in after.items() if count > before.get(name, 0))


if __name__ == "__main__":
    print(json.dumps(probe(Path(sys.argv[1]))))
