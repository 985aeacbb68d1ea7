"""The config rules that span several keys, checked after every key passed its own `opt` rules."""

from __future__ import annotations

from tradebot.config.schema import Config
from tradebot.domain import InstrumentId
from tradebot.errors import ConfigError

# The writer's shutdown waits (flush, then close) must end well inside tradebot.service's
# TimeoutStopSec=20, leaving time for the rest of the stop (feeds, server) before SIGKILL.
STOP_WAIT_BUDGET_S = 15.0


def validate(config: Config) -> None:
    """Check the rules that span several keys."""
    _validate_feeds(config, _validate_instruments(config))
    waits = config.state.flush_timeout_s + config.state.close_timeout_s
    if not waits <= STOP_WAIT_BUDGET_S:  # `not <=`: NaN fails too
        raise _fail(config, "state.close_timeout_s",
                    f"state.flush_timeout_s + state.close_timeout_s = {waits} s exceeds "
                    f"{STOP_WAIT_BUDGET_S} s (the unit stops with SIGKILL after 20 s)")
    names = [s.name for s in config.strategies]
    if len(names) != len(set(names)):
        raise _fail(config, "strategies", "strategy names must be unique")
    for i, strat in enumerate(config.strategies):
        for text in strat.instruments:
            try:
                InstrumentId.parse(text)
            except ValueError as exc:
                raise _fail(config, f"strategies[{i}].instruments", str(exc)) from None


def _validate_instruments(config: Config) -> set[InstrumentId]:
    known = set()
    for i, inst in enumerate(config.instruments):
        try:
            built = inst.build()
        except ValueError as exc:
            raise _fail(config, f"instruments[{i}]", str(exc)) from None
        except ArithmeticError:  # decimal.Overflow, from a step like `tick_size = "9e999999"`
            raise _fail(config, f"instruments[{i}]", "a step or size is out of range") from None
        known.add(built.id)
    return known


def _validate_feeds(config: Config, known: set[InstrumentId]) -> None:
    for i, feed in enumerate(config.feeds):
        if feed.backoff_initial_s > feed.backoff_max_s:
            raise _fail(config, f"feeds[{i}].backoff_initial_s", "must not exceed backoff_max_s")
        for symbol in feed.symbols:
            if not feed.instruments_from_venue and InstrumentId(symbol, feed.venue) not in known:
                raise _fail(config, f"feeds[{i}].symbols",
                            f"{symbol} on {feed.venue} is not in [[instruments]]")


def _fail(config: Config, key: str, message: str) -> ConfigError:
    return ConfigError(message, key=key, source=config.source)
