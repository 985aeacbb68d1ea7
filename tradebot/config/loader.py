"""Load the config: a TOML file, then `TRADEBOT_*` environment overrides, into the schema.

Unknown keys, wrong types and values outside a field's `opt` rules raise `ConfigError` naming
the key and its source (file path or environment variable). Override a key from the environment
with `TRADEBOT_<SECTION>__<KEY>=<toml value>`, e.g. `TRADEBOT_SERVER__PORT=9000`,
`TRADEBOT_FEEDS__0__SYMBOLS='["BTC-USDT"]'`. The machinery is generic over the dataclasses it
builds; only `load_config` knows the root `Config` and its cross-key checks.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

from tradebot.config.schema import STRATEGY_KINDS, VENUES, Config
from tradebot.config.validate import validate
from tradebot.errors import ConfigError

ENV_PREFIX = "TRADEBOT_"

T = TypeVar("T")


class _Loader:
    def __init__(self, source: str, choices: Mapping[str, Collection[Any]] | None = None) -> None:
        self.source = source
        self.choices = choices or {}

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
            return self.to_float(value, key)
        if tp in (str, int, bool) and type(value) is tp:
            return value
        raise self.fail(key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")

    def to_float(self, value: float, key: str) -> float:
        # NaN and inf pass no range rule (every comparison with NaN is false) and would switch
        # off what they configure, so no float key takes them, whatever its rules.
        try:
            number = float(value)
        except OverflowError:
            raise self.fail(key, f"{value} is too large for a float") from None
        if not math.isfinite(number):
            raise self.fail(key, f"expected a finite number, got {value!r}")
        return number

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
        # A `choices_from` set the caller did not supply is not checked (see load_config).
        choices = (self.choices.get(rules["choices_from"]) if "choices_from" in rules
                   else rules.get("choices"))
        if choices is not None and value not in choices:
            raise self.fail(key, f"{value!r} is not one of {', '.join(map(str, choices))}")
        low = rules.get("min")
        if low is not None and (value < low or (rules.get("exclusive_min") and value == low)):
            op = ">" if rules.get("exclusive_min") else ">="
            raise self.fail(key, f"{value} is out of range: must be {op} {low}")
        if "max" in rules and value > rules["max"]:
            raise self.fail(key, f"{value} is out of range: must be <= {rules['max']}")
        return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _set_path(tree: dict[str, Any], parts: list[str], value: Any, var: str, root: type) -> None:
    node: Any = tree
    for i, part in enumerate(parts):
        key = ".".join(parts[:i + 1])
        if not part:
            raise ConfigError("empty key between '__' separators", key=key, source=var)
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or int(part) >= len(node):
                raise ConfigError(f"no list item {part}", key=key, source=var)
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
            if i < len(parts) - 1 and part not in node:
                node[part] = _default_subtree(root, parts[: i + 1])
        else:
            # The path runs through a plain value (`server.port.x`): nothing to set there.
            raise ConfigError("not a table or a list", key=".".join(parts[:i]), source=var)
        if i == len(parts) - 1:
            node[index] = value
        else:
            node = node[index]


def _default_subtree(root: type, parts: list[str]) -> Any:
    """Return the defaults under a path as plain data, so an env var can edit one list item."""
    node: Any = _as_data(root())
    for part in parts:
        if isinstance(node, list) and part.isascii() and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.get(part, {})
        else:
            return {}  # no default there (an item the file added): the file's value stands
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
    # A TOML value, else the text itself; `1\nx = 2` is text, not a value with a second key.
    try:
        parsed = tomllib.loads(f"v = {raw}")
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    return parsed["v"] if len(parsed) == 1 else raw


def _apply_env(tree: dict[str, Any], environ: Mapping[str, str], root: type) -> list[str]:
    applied = []
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var == "TRADEBOT_CONFIG" or "__" not in var:
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX):].split("__")]
        _set_path(tree, parts, _parse_env_value(environ[var]), var, root)
        applied.append(var)
    return applied


def _read_toml(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a config file", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); TOML files are UTF-8", source=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=str(path)) from None
    except RecursionError:
        raise ConfigError("invalid TOML: nested too deeply", source=str(path)) from None
    except ValueError as exc:  # after its subclasses above: here a NUL byte in the path
        raise ConfigError(f"not a usable path ({exc})", source=repr(str(path))) from None


def build_section(cls: type[T], data: Mapping[str, Any], key: str, source: str = "") -> T:
    """Build dataclass `cls` from plain data under the config rules (unknown keys, types,
    `opt` ranges and choices), naming `key` in errors; strategies use it for their params."""
    result: T = _Loader(source).build(cls, data, key)
    return result


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None, *,
                venues: Collection[str] | None = None,
                strategy_kinds: Collection[str] | None = None) -> Config:
    """Load the config from `path` (or the defaults) and apply `TRADEBOT_*` overrides.

    `venues` are the venue names a feed may name (the feed registry's, which this layer may not
    import) and `strategy_kinds` the kinds a strategy may name (the strategy registry's): the
    CLI passes them, so an unknown one is a config error; without them they are not checked
    here (building the feed or the strategy still refuses an unknown one).
    """
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        tree = _read_toml(path)
    env_vars = _apply_env(tree, environ, Config)
    if env_vars:
        source = f"{source} + {', '.join(env_vars)}"
    choices = {name: tuple(given) for name, given in
               ((VENUES, venues), (STRATEGY_KINDS, strategy_kinds)) if given is not None}
    config: Config = _Loader(source, choices).build(Config, tree, "")
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
