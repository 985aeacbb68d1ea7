"""The typed, frozen configuration schema: one dataclass per TOML table, `Config` at the root.

Every key is a dataclass field; `opt(default, **rules)` attaches the rules the loader enforces
(`min`, `max`, `exclusive_min`, `choices`, and `choices_from`: a named set of choices the caller
supplies at load time, such as the feed registry's venue names, which this layer may not import).
The default run's venue data (Binance instruments and fees) lives in `defaults.py`.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebot.config import defaults
from tradebot.domain import Instrument, InstrumentId, MarketKind

# The `choices_from` sets the caller passes: the feed registry's venue names for
# `FeedConfig.venue`, the strategy registry's kinds for `StrategyConfig.kind`.
VENUES = "venues"
STRATEGY_KINDS = "strategy_kinds"


def opt(default: Any, **rules: Any) -> Any:
    """Declare a field with a default and validation rules (min, max, choices, choices_from).

    `dataclasses.MISSING` as the default declares a required key with rules.
    """
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=rules)
    return field(default=default, metadata=rules)


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = opt("info", choices=("debug", "info", "warning", "error"))
    format: str = opt("auto", choices=("auto", "json", "console"))


@dataclass(frozen=True, slots=True)
class StateConfig:
    # $STATE_DIRECTORY (set by systemd) takes precedence over `dir`.
    dir: str = "state"
    database_url: str = ""  # empty: SQLite file tradebot.sqlite3 in the state directory
    writer_queue_size: int = opt(10_000, min=16, max=10_000_000)
    writer_batch_size: int = opt(500, min=1, max=100_000)
    equity_interval_s: float = opt(10.0, min=0.1, max=86_400.0)
    # Shutdown waits on the writer; together under the unit's TimeoutStopSec (validate.py).
    flush_timeout_s: float = opt(5.0, min=0.1, max=60.0)
    close_timeout_s: float = opt(5.0, min=0.1, max=60.0)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = opt(8480, min=0, max=65_535)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    venue: str = opt("binance", choices_from=VENUES)
    symbols: list[str] = opt(["BTC-USDT", "ETH-USDT"])
    ws_url: str = ""  # empty: the venue's public endpoint
    rest_url: str = ""  # empty: the venue's public REST endpoint
    stale_after_s: float = opt(10.0, min=0.5, max=3600.0)
    backoff_initial_s: float = opt(0.5, min=0.01, max=60.0)
    backoff_max_s: float = opt(30.0, min=0.1, max=3600.0)
    resync_min_interval_s: float = opt(1.0, min=0.0, max=600.0)
    snapshot_limit: int = opt(1000, min=5, max=5000)
    max_connection_age_s: float = opt(23 * 3600.0, min=10.0, max=24 * 3600.0)
    # Load tick/lot sizes from the venue's REST instrument list at start; [[instruments]]
    # entries override what it says, and stand in when it cannot be reached.
    instruments_from_venue: bool = False


@dataclass(frozen=True, slots=True)
class InstrumentConfig:
    venue: str
    symbol: str
    venue_symbol: str
    kind: str = opt("spot", choices=tuple(k.value for k in MarketKind))
    base: str = ""
    quote: str = ""
    tick_size: Decimal = opt(Decimal("0.01"), min=Decimal(0), exclusive_min=True)
    lot_size: Decimal = opt(Decimal("0.00001"), min=Decimal(0), exclusive_min=True)
    min_notional: Decimal = opt(Decimal(0), min=Decimal(0))
    contract_size: Decimal = opt(Decimal(1), min=Decimal(0), exclusive_min=True)
    # Decimals of book prices/sizes on the wire when finer than tick/lot (-1: tick/lot's).
    price_precision: int = opt(-1, min=-1, max=12)
    size_precision: int = opt(-1, min=-1, max=12)

    def build(self) -> Instrument:
        """Return the domain Instrument these settings describe."""
        return Instrument(
            id=InstrumentId(self.symbol, self.venue),
            venue_symbol=self.venue_symbol,
            kind=MarketKind(self.kind),
            base=self.base,
            quote=self.quote,
            tick_size=self.tick_size,
            lot_size=self.lot_size,
            min_notional=self.min_notional,
            contract_size=self.contract_size,
            price_precision=self.price_precision,
            size_precision=self.size_precision,
        )


@dataclass(frozen=True, slots=True)
class FeeTierConfig:
    # The tier applies once the account's traded notional on the venue reaches min_volume.
    min_volume: Decimal = opt(Decimal(0), min=Decimal(0))
    maker: Decimal = opt(Decimal("0.001"), min=Decimal("-0.01"), max=Decimal("0.1"))
    taker: Decimal = opt(Decimal("0.001"), min=Decimal(0), max=Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class FeeConfig:
    maker: Decimal = opt(Decimal("0.001"), min=Decimal("-0.01"), max=Decimal("0.1"))
    taker: Decimal = opt(Decimal("0.001"), min=Decimal(0), max=Decimal("0.1"))
    tiers: list[FeeTierConfig] = opt([])  # above the base rates, by traded notional


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    # constant: always the value; uniform: value +- jitter_ms; lognormal: value is the median
    # and sigma the shape. Draws come from a generator seeded by paper.seed and the venue.
    distribution: str = opt("uniform", choices=("constant", "uniform", "lognormal"))
    entry_ms: float = opt(75.0, min=0.0, max=60_000.0)
    response_ms: float = opt(75.0, min=0.0, max=60_000.0)
    jitter_ms: float = opt(25.0, min=0.0, max=60_000.0)
    sigma: float = opt(0.3, min=0.0, max=5.0)


@dataclass(frozen=True, slots=True)
class PaperConfig:
    account_currency: str = "USDT"
    starting_cash: Decimal = opt(Decimal(10_000), min=Decimal(0))
    fees: dict[str, FeeConfig] = opt(
        {venue: FeeConfig(maker=maker, taker=taker)
         for venue, (maker, taker) in defaults.FEE_RATES.items()}
    )
    # Per venue; a venue not listed has no latency. Starting points: Binance 50-100 ms,
    # Coinbase 100-200 ms (uniform 150 +- 50).
    latency: dict[str, LatencyConfig] = opt({venue: LatencyConfig() for venue in defaults.VENUES})
    seed: int = opt(0, min=0)
    queue_model: str = opt("conservative", choices=("conservative", "power"))
    queue_exponent: float = opt(3.0, min=0.1, max=20.0)
    # Perpetuals: initial margin = notional / leverage; liquidation below maintenance margin.
    leverage: Decimal = opt(Decimal(10), min=Decimal(1), max=Decimal(125))
    maintenance_margin: Decimal = opt(Decimal("0.005"), min=Decimal(0), max=Decimal("0.5"))
    # Funding when no funding feed says otherwise: the rate charged every interval.
    funding_rate: Decimal = opt(Decimal("0.0001"), min=Decimal("-0.05"), max=Decimal("0.05"))
    funding_interval_h: int = opt(8, min=1, max=24)
    # A maker fill is flagged `deep_queue` when the queue ahead at entry was more than this
    # many times the order's size, `adverse_move` when the mid moves against it by more than
    # toxic_move_bps within toxic_window_s.
    toxic_queue_position: float = opt(10.0, min=0.0)
    toxic_window_s: float = opt(5.0, min=0.0, max=3600.0)
    toxic_move_bps: float = opt(5.0, min=0.0, max=10_000.0)
    # False: resting orders survive a restart (persisted, queue recomputed from the book).
    cancel_on_shutdown: bool = False


@dataclass(frozen=True, slots=True)
class RiskConfig:
    max_position_notional: Decimal = opt(Decimal(1000), min=Decimal(0))
    max_order_notional: Decimal = opt(Decimal(500), min=Decimal(0))
    max_book_age_s: float = opt(5.0, min=0.0, max=3600.0)


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    name: str
    kind: str = opt(MISSING, choices_from=STRATEGY_KINDS)
    instruments: list[str] = opt([])  # empty: every instrument with a book
    params: dict[str, Any] = opt({})


@dataclass(frozen=True, slots=True)
class WatchdogConfig:
    max_loop_lag_s: float = opt(1.0, min=0.01, max=60.0)
    max_writer_queue_ratio: float = opt(0.9, min=0.0, max=1.0)
    # READY=1 waits this long for the first book snapshots, then reports ready-but-degraded.
    startup_book_timeout_s: float = opt(30.0, min=0.0, max=600.0)


@dataclass(frozen=True, slots=True)
class FeaturesConfig:
    enabled: bool = True
    bar_interval_s: float = opt(60.0, min=1.0, max=86_400.0)
    # A time bar closes on the clock this long after its interval ends, so trades that
    # arrive a little late still land in their own bar.
    bar_close_grace_s: float = opt(1.0, min=0.0, max=60.0)


DEFAULT_INSTRUMENTS = [InstrumentConfig(**row) for row in defaults.INSTRUMENTS]


@dataclass(frozen=True, slots=True)
class Config:
    log: LogConfig = opt(LogConfig())
    state: StateConfig = opt(StateConfig())
    server: ServerConfig = opt(ServerConfig())
    feeds: list[FeedConfig] = opt([FeedConfig()])
    instruments: list[InstrumentConfig] = opt(DEFAULT_INSTRUMENTS)
    paper: PaperConfig = opt(PaperConfig())
    risk: RiskConfig = opt(RiskConfig())
    strategies: list[StrategyConfig] = opt(
        [StrategyConfig(name="ema_cross", kind="ema_cross", params={})]
    )
    watchdog: WatchdogConfig = opt(WatchdogConfig())
    features: FeaturesConfig = opt(FeaturesConfig())
    source: str = "<defaults>"

    def instrument_map(self) -> dict[InstrumentId, Instrument]:
        """Return every configured instrument by id."""
        return {i.build().id: i.build() for i in self.instruments}

    def state_dir(self) -> Path:
        """Return the state directory: $STATE_DIRECTORY under systemd, else `state.dir`."""
        env = os.environ.get("STATE_DIRECTORY")
        return Path(env.split(":")[0] if env else self.state.dir)

    def database_url(self) -> str:
        """Return the SQLAlchemy URL of the state database."""
        if self.state.database_url:
            return self.state.database_url
        return f"sqlite:///{self.state_dir() / 'tradebot.sqlite3'}"
