"""Entry and response latency of a simulated venue: constant or drawn from a seeded generator.

The generator is seeded from `paper.seed` and the venue name (string seeds hash with SHA-512,
so draws do not depend on PYTHONHASHSEED): the same recording and the same orders draw the same
latencies, in the same order, on every run.
"""

from __future__ import annotations

import math
import random

from tradebot.config import LatencyConfig

_MS = 1_000_000


class LatencyModel:
    """Draw entry (order to venue) and response (venue to us) latencies in ns."""

    def __init__(self, config: LatencyConfig | None, seed: int, venue: str) -> None:
        self._config = config
        self._rng = random.Random(f"{seed}:{venue}")  # noqa: S311 - simulation, not crypto

    def entry_ns(self) -> int:
        """Return the next entry latency."""
        return self._draw(self._config.entry_ms) if self._config is not None else 0

    def response_ns(self) -> int:
        """Return the next response latency."""
        return self._draw(self._config.response_ms) if self._config is not None else 0

    def _draw(self, value_ms: float) -> int:
        cfg = self._config
        assert cfg is not None  # noqa: S101 - callers check
        if cfg.distribution == "uniform":
            value_ms = self._rng.uniform(value_ms - cfg.jitter_ms, value_ms + cfg.jitter_ms)
        elif cfg.distribution == "lognormal" and value_ms > 0:
            value_ms = self._rng.lognormvariate(math.log(value_ms), cfg.sigma)
        return max(0, round(value_ms * _MS))
