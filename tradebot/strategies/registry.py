"""Strategy kinds by config name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tradebot.errors import ConfigError
from tradebot.strategies.base import Strategy
from tradebot.strategies.ema_cross import EmaCross
from tradebot.strategies.quoting import Quoting

Factory = Callable[[str, Mapping[str, Any]], Strategy]

KINDS: dict[str, Factory] = {
    "ema_cross": EmaCross,
    "quoting": Quoting,
}


def build_strategy(name: str, kind: str, params: Mapping[str, Any]) -> Strategy:
    """Build a strategy; ConfigError names the key when the kind or a parameter is bad."""
    factory = KINDS.get(kind)
    if factory is None:
        raise ConfigError(f"unknown strategy kind {kind!r} (known: {', '.join(sorted(KINDS))})",
                          key=f"strategies.{name}.kind")
    return factory(name, params)
