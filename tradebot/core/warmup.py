"""Compile every kernel with production types before the service reports ready."""

from __future__ import annotations

import importlib

# Every core module with a `warmup()`; a module listed here that is absent is an error.
MODULES = ("book", "jsonscan", "signals", "checksum", "objscan", "levels")


def warmup_all() -> list[str]:
    """Call each core module's `warmup()`; return the module names."""
    for name in MODULES:
        importlib.import_module(f"tradebot.core.{name}").warmup()
    return list(MODULES)
