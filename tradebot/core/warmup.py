"""Compile kernels with production types before the service reports ready.

`MODULES` is every core module with a `warmup()`; `DAEMON_MODULES` the ones whose kernels a
run (live or replay) calls: feeds, books, features, strategies and the paper venue. The rest
(batch indicators, batch microstructure, risk maths) serve research, `tradebot features` and
benchmarks; loading them too would cost the daemon about 150 MB of LLVM modules and half its
start time for code it never calls. A test replays every venue with every strategy after
`warmup_daemon()` and fails on any kernel compiled or loaded afterwards.
"""

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
DAEMON_MODULES = ("book", "jsonscan", "objscan", "checksum", "levels", "signals", "bars", "fused")

BeforeModule = Callable[[int, str], None]


def warmup_all(before_module: BeforeModule | None = None) -> list[str]:
    """Call every core module's `warmup()`; return the module names."""
    return _warm(MODULES, before_module)


def warmup_daemon(before_module: BeforeModule | None = None) -> list[str]:
    """Compile the kernels a live run or a replay calls; return the module names.

    `before_module(index, name)` runs before each module: a cold numba cache takes minutes
    on small hardware, and the daemon uses it to log progress and extend systemd's start
    timeout.
    """
    return _warm(DAEMON_MODULES, before_module)


def _warm(names: tuple[str, ...], before_module: BeforeModule | None) -> list[str]:
    for index, name in enumerate(names):
        if before_module is not None:
            before_module(index, name)
        importlib.import_module(f"tradebot.core.{name}").warmup()
    return list(names)
