"""Property-based fuzzing of the config loader and the command line: generated TOML files
(built from the schema's own keys, and the shipped file cut and spliced), `TRADEBOT_*`
overrides and argv end in a value, a ConfigError or a README exit code; never a traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tradebot import cli
from tradebot.config import Config, load_config
from tradebot.config.probe import probe_database
from tradebot.errors import ConfigError
from tradebot.feeds.registry import FEEDS
from tradebot.strategies.registry import KINDS

# Tens of examples each: the suite runs on 2 cores in CI.
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])
SHIPPED = (REPO / "config" / "tradebot.toml").read_bytes()
EXIT_CODES = {0, 2, 65, 66, 78}  # README's table, less 1: the stubbed commands cannot fail


@functools.cache
def schema_keys() -> dict[str, tuple[str, ...]]:
    """Return each table of the default config (dotted, lists as item 0) and its keys."""
    tables: dict[str, tuple[str, ...]] = {}

    def walk(value: Any, path: str) -> None:
        if dataclasses.is_dataclass(value):
            tables[path] = tuple(f.name for f in dataclasses.fields(value) if f.name != "source")
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{path}.{f.name}".strip("."))
        elif isinstance(value, list) and value:
            walk(value[0], f"{path}.0")
        elif isinstance(value, dict) and value:
            walk(next(iter(value.values())), f"{path}.{next(iter(value))}")

    walk(Config(), "")
    return tables


SCALARS = st.one_of(
    st.integers(-(2**70), 2**70), st.floats(), st.booleans(), st.text(max_size=12),
    st.sampled_from(["binance", "nope", "ema_cross", "quoting", "localhost", "BTC-USDT",
                     "BTC-USDT.binance", "sqlite:///x.db", "postgresql+psycopg://h/d", "spot"]),
)


def toml_value(value: Any) -> str:
    """Render a value as a TOML literal (inline tables and arrays); nan and inf included."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


@st.composite
def tables(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """Draw a table: mostly the schema's own keys, a few unknown ones, values of any shape."""
    known = schema_keys()
    table_path = draw(st.sampled_from(sorted(known)))
    keys = st.one_of(st.sampled_from(known[table_path] or ("x",)), st.text(max_size=6))
    values: st.SearchStrategy[Any] = SCALARS if depth >= 2 else st.one_of(
        SCALARS, st.lists(SCALARS, max_size=3), tables(depth + 1),
        st.lists(tables(depth + 1), max_size=2))
    return draw(st.dictionaries(keys, values, max_size=4))


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Draw a config file: generated tables, or the shipped file cut or spliced with junk."""
    if draw(st.booleans()):
        tree = draw(st.dictionaries(st.sampled_from([k for k in schema_keys() if "." not in k
                                                     and k]), tables(), max_size=4))
        return "\n".join(f"{k} = {toml_value(v)}" for k, v in tree.items()).encode()
    i = draw(st.integers(0, len(SHIPPED)))
    junk = draw(st.one_of(st.binary(max_size=8),
                          st.sampled_from([b"nan", b"inf", b"-1", b"\xff", b"[", b'"'])))
    return SHIPPED[:i] + junk + SHIPPED[i + draw(st.integers(0, 8)):]


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """Draw `TRADEBOT_*` overrides: schema paths (or junk) set to TOML literals or raw text."""
    known = schema_keys()
    paths = st.builds(lambda t, k: f"{t}.{k}".strip("."), st.sampled_from(sorted(known)),
                      st.one_of(st.sampled_from(["port", "host", "x", "0", ""]),
                                st.text("abcdefgh_0123", max_size=8)))
    names = paths.map(lambda p: "TRADEBOT_" + "__".join(p.split(".")).upper())
    values = st.one_of(SCALARS.map(toml_value), st.text(max_size=10))
    return draw(st.dictionaries(names, values, max_size=3))


@FUZZ
@given(document=documents(), environ=environments())
def test_generated_config_files_and_overrides_load_or_raise_config_error(
        tmp_path_factory: pytest.TempPathFactory, document: bytes,
        environ: dict[str, str]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "tradebot.toml"
    path.write_bytes(document)
    try:
        config = load_config(path, environ=environ, venues=tuple(FEEDS),
                             strategy_kinds=tuple(KINDS))
        probe_database(config.database_url(), "state.database_url", config.source)
    except ConfigError as exc:
        assert str(exc)


@functools.cache
def argv_files(root: Path) -> tuple[str, ...]:
    (root / "good.toml").write_bytes(SHIPPED)
    (root / "bad.toml").write_bytes(b"\xff\xfe[server\n")
    (root / "rec.gz").write_bytes(b"")
    return (str(root), str(root / "good.toml"), str(root / "bad.toml"), str(root / "rec.gz"),
            str(root / "missing" / "x.sqlite3"), str(root / "out.csv"))


TOKENS = ["run", "replay", "record", "serve-recording", "features", "check-config", "version",
          "--config", "--speed", "--db", "--out", "--venue", "--json", "--strategy", "--fps",
          "--ws-port", "--http-port", "--duration", "--symbols", "--no-progress", "-h",
          "nan", "inf", "-inf", "-1", "0", "1e309", "99999", "quoting", "nope", "binance",
          "postgresql+psycopg://h/d", "sqlite:///x.db", "nosuch://x"]


@FUZZ
@given(data=st.data())
def test_generated_command_lines_end_in_a_readme_exit_code(
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        data: st.DataObject) -> None:
    root = tmp_path_factory.getbasetemp() / "argv"
    root.mkdir(exist_ok=True)
    token = st.one_of(st.sampled_from(TOKENS + list(argv_files(root))), st.text(max_size=8))
    argv = data.draw(st.lists(token, max_size=7))
    # The commands themselves are stubbed: this is about the parser and every check before
    # a command starts (config, probes, paths), which run in full.
    monkeypatch.setattr(cli, "_command", lambda _name: lambda _config, _args: 0)
    monkeypatch.setattr("tradebot.cli.features.features", lambda _args: 0)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    assert code in EXIT_CODES, (argv, err.getvalue()[-2000:])
