"""A second process loads the compiled kernels from NUMBA_CACHE_DIR instead of compiling them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# Warms the fused kernels (what the FeatureEngine calls per event) and the indicator module,
# then reports every public compiled dispatcher's cache hits and misses (private callees are
# compiled and cached as part of their callers).
SCRIPT = """
import json
from numba.core.registry import CPUDispatcher
from tradebot.core import fused, indicators
fused.warmup()
indicators.warmup()
stats = {}
for module in (fused, indicators):
    for name, obj in vars(module).items():
        if (isinstance(obj, CPUDispatcher) and obj.signatures and not name.startswith("_")
                and obj.__module__ == module.__name__):
            stats[module.__name__ + "." + name] = [sum(obj.stats.cache_hits.values()),
                                                   sum(obj.stats.cache_misses.values())]
print(json.dumps(stats))
"""


def _run(cache: Path) -> dict[str, list[int]]:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=REPO, check=True,
                          capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_kernels_from_the_cache(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert "tradebot.core.fused.update_bar" in first and "tradebot.core.fused.update_trade" in first
    assert all(misses >= 1 and hits == 0 for hits, misses in first.values()), first
    assert any(tmp_path.rglob("*.nbc")) and any(tmp_path.rglob("*.nbi"))
    second = _run(tmp_path)
    assert second.keys() == first.keys()
    assert all(hits >= 1 and misses == 0 for hits, misses in second.values()), second
