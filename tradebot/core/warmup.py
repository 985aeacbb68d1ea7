"""Compile every kernel with production types before the service reports ready."""

from __future__ import annotations

import importlib

# Every core module with a `warmup()`; a module listed here that is absent is an error.
MODULES = (
    "book", "jsonscan", "signals", "checksum", "objscan", "levels",
    "rolling", "bars", "indicators", "indicators_adx", "indicators_stats", "indicators_stoch",
    "indicators_trend", "indicators_volume", "microstructure", "microstructure_flow", "fused",
    "riskmath", "riskmath_corr", "riskmath_var",
)


def warmup_all() -> list[str]:
    """Call each core module's `warmup()`; return the module names."""
    for name in MODULES:
        importlib.import_module(f"tradebot.core.{name}").warmup()
    return list(MODULES)
