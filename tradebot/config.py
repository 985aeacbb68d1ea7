"""Typed, frozen configuration: TOML file + `TRADEBOT_*` environment overrides.

Every key is declared by a dataclass field below; unknown keys, wrong types and out-of-range
values raise `ConfigError` naming the key and its source (file path or environment variable).
Override a key from the environment with `TRADEBOT_<SECTION>__<KEY>=<toml value>`, e.g.
`TRADEBOT_SERVER__PORT=9000`, `TRADEBOT_FEEDS__0__SYMBOLS='["BTC-USDT"]'`.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import ConfigError

ENV_PREFIX = "TRADEBOT_"


T = TypeVar("T")


def opt(default: Any, **rules: Any) -> Any:
    """Declare a field with a default and validation rules (min, max, choices)."""
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


@dataclass(frozen=True, slots=True)
class ServerConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = opt(8480, min=0, max=65_535)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    venue: str = opt("binance", choices=("binance", "binance_usdm", "binance_coinm", "bybit",
                                          "bybit_linear", "bybit_inverse", "kucoin",
                                          "coinbase", "coinbase_exchange", "kraken",
                                          "kraken_futures", "okx"))
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
        {
            "binance": FeeConfig(maker=Decimal("0.001"), taker=Decimal("0.001")),
            "binance_usdm": FeeConfig(maker=Decimal("0.0002"), taker=Decimal("0.0005")),
            "binance_coinm": FeeConfig(maker=Decimal("0.0002"), taker=Decimal("0.0005")),
        }
    )
    # Per venue; a venue not listed has no latency. Starting points: Binance 50-100 ms,
    # Coinbase 100-200 ms (uniform 150 +- 50).
    latency: dict[str, LatencyConfig] = opt(
        {
            "binance": LatencyConfig(),
            "binance_usdm": LatencyConfig(),
            "binance_coinm": LatencyConfig(),
        }
    )
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
    kind: str
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


def _spot(symbol: str, venue_symbol: str, tick: str, lot: str, min_notional: str) -> Any:
    base, quote = symbol.split("-")[:2]
    return InstrumentConfig(
        venue="binance", symbol=symbol, venue_symbol=venue_symbol, kind="spot", base=base,
        quote=quote, tick_size=Decimal(tick), lot_size=Decimal(lot),
        min_notional=Decimal(min_notional), size_precision=8,
    )


def _perp(venue: str, symbol: str, venue_symbol: str, kind: str, tick: str, lot: str,
          min_notional: str, contract: str = "1") -> Any:
    base, quote = symbol.split("-")[:2]
    return InstrumentConfig(
        venue=venue, symbol=symbol, venue_symbol=venue_symbol, kind=kind, base=base, quote=quote,
        tick_size=Decimal(tick), lot_size=Decimal(lot), min_notional=Decimal(min_notional),
        contract_size=Decimal(contract),
    )


# Binance exchangeInfo values (PRICE_FILTER, LOT_SIZE, NOTIONAL) as of the 2024 recordings.
DEFAULT_INSTRUMENTS = [
    _spot("BTC-USDT", "BTCUSDT", "0.01", "0.00001", "5"),
    _spot("ETH-USDT", "ETHUSDT", "0.01", "0.0001", "5"),
    _perp("binance_usdm", "BTC-USDT-PERP", "BTCUSDT", "linear_perp", "0.1", "0.001", "100"),
    _perp("binance_usdm", "ETH-USDT-PERP", "ETHUSDT", "linear_perp", "0.01", "0.001", "20"),
    _perp("binance_coinm", "BTC-USD-PERP", "BTCUSD_PERP", "inverse_perp", "0.1", "1", "0", "100"),
    _perp("binance_coinm", "ETH-USD-PERP", "ETHUSD_PERP", "inverse_perp", "0.01", "1", "0", "10"),
]


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


# --- loading -------------------------------------------------------------------------------


class _Loader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, key=key, source=self.source)

    def build(self, cls: type, data: Any, path: str) -> Any:
        if dataclasses.is_dataclass(data):
            return data
        if not isinstance(data, Mapping):
            raise self.fail(path or "<root>", f"expected a table, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            key = f"{path}.{unknown[0]}" if path else unknown[0]
            raise self.fail(key, f"unknown key (known: {', '.join(sorted(fields))})")
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for name, f in fields.items():
            key = f"{path}.{name}" if path else name
            if name in data:
                values[name] = self.check_rules(f, self.convert(hints[name], data[name], key), key)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.fail(key, "required key is missing")
        return cls(**values)

    def convert(self, tp: Any, value: Any, key: str) -> Any:
        origin = typing.get_origin(tp)
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)  # type: ignore[arg-type]
        if origin is list:
            if not isinstance(value, list):
                raise self.fail(key, f"expected a list, got {type(value).__name__}")
            (item,) = typing.get_args(tp)
            return [self.convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, Mapping):
                raise self.fail(key, f"expected a table, got {type(value).__name__}")
            _, item = typing.get_args(tp)
            return {str(k): self.convert(item, v, f"{key}.{k}") for k, v in value.items()}
        if tp is Any:
            return value
        if tp is Decimal:
            return self.to_decimal(value, key)
        if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if tp in (str, int, bool) and type(value) is tp:
            return value
        raise self.fail(key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")

    def to_decimal(self, value: Any, key: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise self.fail(key, f"expected a decimal number, got {type(value).__name__}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(key, f"expected a decimal number, got {value!r}") from None
        if not number.is_finite():
            raise self.fail(key, f"expected a finite number, got {value!r}")
        return number

    def check_rules(self, f: dataclasses.Field[Any], value: Any, key: str) -> Any:
        rules = f.metadata
        if "choices" in rules and value not in rules["choices"]:
            raise self.fail(key, f"{value!r} is not one of {', '.join(map(str, rules['choices']))}")
        low = rules.get("min")
        if low is not None and (value < low or (rules.get("exclusive_min") and value == low)):
            op = ">" if rules.get("exclusive_min") else ">="
            raise self.fail(key, f"{value} is out of range: must be {op} {low}")
        if "max" in rules and value > rules["max"]:
            raise self.fail(key, f"{value} is out of range: must be <= {rules['max']}")
        return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _set_path(tree: dict[str, Any], parts: list[str], value: Any, var: str) -> None:
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"no list item {part}", key=".".join(parts[:i + 1]), source=var)
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, _default_subtree(parts[: i + 1]))


def _default_subtree(parts: list[str]) -> Any:
    """Return the defaults under a path as plain data, so an env var can edit one list item."""
    node: Any = _as_data(Config())
    for part in parts:
        node = node[int(part)] if isinstance(node, list) else node.get(part, {})
    return node


def _as_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_as_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_data(v) for k, v in value.items()}
    return value


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(tree: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    applied = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == "TRADEBOT_CONFIG" or "__" not in var:
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX):].split("__")]
        _set_path(tree, parts, _parse_env_value(environ[var]), var)
        applied.append(var)
    return applied


def build_section(cls: type[T], data: Mapping[str, Any], key: str, source: str = "") -> T:
    """Build dataclass `cls` from plain data under the config rules (unknown keys, types,
    `opt` ranges and choices), naming `key` in errors; strategies use it for their params."""
    result: T = _Loader(source).build(cls, data, key)
    return result


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load the config from `path` (or the defaults) and apply `TRADEBOT_*` overrides."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                tree = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError("file not found", source=source) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", source=source) from None
    env_vars = _apply_env(tree, environ)
    if env_vars:
        source = f"{source} + {', '.join(env_vars)}"
    config = _Loader(source).build(Config, tree, "")
    config = dataclasses.replace(config, source=source)
    validate(config)
    return config


def default_config_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the config file used without --config: $TRADEBOT_CONFIG, then systemd's dir."""
    environ = os.environ if environ is None else environ
    if environ.get("TRADEBOT_CONFIG"):
        return Path(environ["TRADEBOT_CONFIG"])
    conf_dir = environ.get("CONFIGURATION_DIRECTORY")
    if conf_dir and (Path(conf_dir) / "tradebot.toml").exists():
        return Path(conf_dir) / "tradebot.toml"
    return None


def validate(config: Config) -> None:
    """Check the rules that span several keys."""
    fail = _Loader(config.source).fail
    _validate_feeds(config, _validate_instruments(config))
    names = [s.name for s in config.strategies]
    if len(names) != len(set(names)):
        raise fail("strategies", "strategy names must be unique")
    for i, strat in enumerate(config.strategies):
        for text in strat.instruments:
            try:
                InstrumentId.parse(text)
            except ValueError as exc:
                raise fail(f"strategies[{i}].instruments", str(exc)) from None


def _validate_instruments(config: Config) -> set[InstrumentId]:
    fail = _Loader(config.source).fail
    known = set()
    for i, inst in enumerate(config.instruments):
        try:
            built = inst.build()
        except ValueError as exc:
            raise fail(f"instruments[{i}]", str(exc)) from None
        known.add(built.id)
    return known


def _validate_feeds(config: Config, known: set[InstrumentId]) -> None:
    fail = _Loader(config.source).fail
    for i, feed in enumerate(config.feeds):
        if feed.backoff_initial_s > feed.backoff_max_s:
            raise fail(f"feeds[{i}].backoff_initial_s", "must not exceed backoff_max_s")
        for symbol in feed.symbols:
            if not feed.instruments_from_venue and InstrumentId(symbol, feed.venue) not in known:
                raise fail(f"feeds[{i}].symbols",
                           f"{symbol} on {feed.venue} is not in [[instruments]]")
