"""Compile every kernel with production types before the service reports ready."""

from __future__ import annotations

import importlib
from collections.abc import Callable

# Every core module with a `warmup()`; a module listed here that is absent is an error.
MODULES = (
    "book", "jsonscan", "signals", "checksum", "objscan", "levels",
    "rolling", "bars", "indicators", "indicators_adx", "indicators_stats", "indicators_stoch",
    "indicators_trend", "indicators_volume", "microstructure", "microstructure_flow", "fused",
    "riskmath", "riskmath_corr", "riskmath_var",
)


def warmup_all(before_module: Callable[[int, str], None] | None = None) -> list[str]:
    """Call each core module's `warmup()`; return the module names.

    `before_module(index, name)` runs before each module: a cold numba cache takes minutes
    on small hardware, and the daemon uses it to log progress and extend systemd's start
    timeout.
    """
    for index, name in enumerate(MODULES):
        if before_module is not None:
            before_module(index, name)
        importlib.import_module(f"tradebot.core.{name}").warmup()
    return list(MODULES)
