"""Typed, frozen configuration: the schema, its default venue data, the loader, the checks.

`schema` declares every key (one dataclass per TOML table, rules via `opt`), `defaults` holds
the default run's Binance data, `loader` reads TOML and `TRADEBOT_*` overrides into the schema,
`validate` checks the rules that span keys. Import the public names from here.
"""

from tradebot.config.loader import ENV_PREFIX, build_section, default_config_path, load_config
from tradebot.config.schema import (
    DEFAULT_INSTRUMENTS,
    Config,
    FeaturesConfig,
    FeeConfig,
    FeedConfig,
    FeeTierConfig,
    InstrumentConfig,
    LatencyConfig,
    LogConfig,
    PaperConfig,
    RiskConfig,
    ServerConfig,
    StateConfig,
    StrategyConfig,
    WatchdogConfig,
    opt,
)
from tradebot.config.validate import validate

__all__ = [
    "DEFAULT_INSTRUMENTS", "ENV_PREFIX", "Config", "FeaturesConfig", "FeeConfig", "FeeTierConfig",
    "FeedConfig", "InstrumentConfig", "LatencyConfig", "LogConfig", "PaperConfig", "RiskConfig",
    "ServerConfig", "StateConfig", "StrategyConfig", "WatchdogConfig", "build_section",
    "default_config_path", "load_config", "opt", "validate",
]
