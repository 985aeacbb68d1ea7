from __future__ import annotations

import dataclasses
from pathlib import Path

from tradebot.app import App
from tradebot.clock import SimClock
from tradebot.config import StateConfig, load_config
from tradebot.events import BookUpdated, Fill, OrderIntent, SubmitOrder, Trade


def app(tmp_path: Path) -> App:
    config = load_config(environ={})
    config = dataclasses.replace(config, state=StateConfig(
        database_url=f"sqlite:///{tmp_path}/t.sqlite3"))
    return App(config, SimClock())


def test_watchdog_is_withheld_for_lag_and_a_stalled_connected_feed(tmp_path: Path) -> None:
    a = app(tmp_path)
    feed = a.feeds["binance"]
    assert a.health.watchdog_reasons(0.0, a.bus.published) == []  # not connected: runner in backoff
    feed.set_state("connected")
    assert a.health.watchdog_reasons(0.0, a.bus.published) == ["bus_stalled"]
    assert a.health.watchdog_reasons(0.0, a.bus.published - 1) == []
    assert a.health.watchdog_reasons(5.0, a.bus.published - 1) == ["loop_lag"]
    a.close()


def test_readiness_names_every_reason(tmp_path: Path) -> None:
    a = app(tmp_path)
    ready, detail = a.health.readiness()
    assert not ready
    assert detail["reasons"][0] == "starting"
    assert any("book BTC-USDT buffering" in r for r in detail["reasons"])
    assert set(detail["venues"]["binance"]["books"]) == {"BTC-USDT", "ETH-USDT"}
    a.close()


def test_numba_cache_directory_is_keyed_by_the_kernel_sources() -> None:
    import os
    import subprocess
    import sys

    def cache_dir(env: dict[str, str]) -> str:
        code = "import tradebot, os; print(os.environ['NUMBA_CACHE_DIR'])"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, check=True).stdout.strip()

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    keyed = cache_dir({**env, "NUMBA_CACHE_DIR": "/tmp/tradebot-base"})
    assert keyed.startswith("/tmp/tradebot-base/") and len(keyed.rsplit("/", 1)[1]) == 16
    assert cache_dir({**env, "NUMBA_CACHE_DIR": keyed}) == keyed  # a child keeps its parent's
    # numba imported before tradebot (a notebook, a benchmark) still caches in the keyed place.
    code = "import numba, tradebot; print(numba.config.CACHE_DIR)"
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**env, "NUMBA_CACHE_DIR": "/tmp/tradebot-base"})
    assert first.stdout.strip() == keyed


def owner(handler: object) -> str:
    """Name the component a bus handler belongs to (bound method or a closure it made)."""
    bound = getattr(handler, "__self__", None)
    if bound is not None:
        return type(bound).__name__
    return getattr(handler, "__qualname__", "?").split(".")[0]


def dispatch_order(a: App) -> dict[str, list[str]]:
    return {topic.__name__: [owner(h) for h in a.bus.handlers(topic)]
            for topic in (BookUpdated, Fill, OrderIntent, SubmitOrder, Trade)}


def test_components_start_in_one_order_which_is_the_dispatch_order(tmp_path: Path) -> None:
    a = app(tmp_path)
    assert a.lifecycle.order == [
        "risk", "execution", "venue", "liquidator", "toxicity", "features", "record",
        "portfolio", "writer", "funding", "strategies"]
    assert all(not a.bus.handlers(t) for t in (BookUpdated, Fill, OrderIntent))  # none yet
    a.open_store()
    assert a.lifecycle.started[-1] == "funding"  # strategies wait for synced books
    a.start_trading()
    # A reordering of the list is a visible change: update docs/architecture.md with it.
    assert dispatch_order(a) == {
        "BookUpdated": ["RiskEngine", "PaperVenue", "Liquidator", "FillToxicity",
                        "FeatureEngine", "Portfolio", "StrategyRunner"],
        "Fill": ["FillToxicity", "RunRecord", "Portfolio", "StoreWriter", "StrategyRunner"],
        "OrderIntent": ["RiskEngine"],
        "SubmitOrder": ["ExecutionEngine", "RunRecord"],
        "Trade": ["PaperVenue", "FeatureEngine"],
    }
    a.close()
    assert a.lifecycle.started == []
