"""Integration fixtures."""

from __future__ import annotations

import pytest

from tradebot.core.warmup import warmup_all


@pytest.fixture(scope="session", autouse=True)
def warm_kernels() -> None:
    """Compile every kernel once, before any test starts a daemon and waits for READY.

    On a cold numba cache (a fresh CI machine) the first warm-up compiles for minutes on the
    loop thread; that belongs to no test's time limit.
    """
    warmup_all()
