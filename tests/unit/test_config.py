from __future__ import annotations

import dataclasses
import importlib.util
import json
import socket
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import REPO
from tradebot.cli import main
from tradebot.config import Config, load_config
from tradebot.errors import ConfigError
from tradebot.feeds.registry import FEEDS


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradebot.toml"
    path.write_text(text)
    return path


def test_shipped_config_equals_the_built_in_defaults() -> None:
    shipped = load_config(REPO / "config" / "tradebot.toml", environ={})
    assert dataclasses.replace(shipped, source="x") == dataclasses.replace(Config(), source="x")


def test_defaults_paper_trade_binance_spot_btc_and_eth_on_localhost() -> None:
    config = load_config(environ={})
    assert [(f.venue, f.symbols) for f in config.feeds] == [("binance", ["BTC-USDT", "ETH-USDT"])]
    assert config.server.host == "127.0.0.1"
    assert config.database_url().startswith("sqlite:///")


def test_unknown_key_is_rejected_naming_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert "server.prot" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.port: expected int, got str"):
        load_config(write(tmp_path, '[server]\nport = "80"\n'), environ={})


def test_out_of_range_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.port: 70000 is out of range"):
        load_config(write(tmp_path, "[server]\nport = 70000\n"), environ={})


def test_choice_and_nested_list_errors_name_the_item(tmp_path: Path) -> None:
    text = '[[feeds]]\nvenue = "binance"\nsymbols = ["DOGE-USDT"]\n'
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.symbols: DOGE-USDT on binance"):
        load_config(write(tmp_path, text), environ={})
    with pytest.raises(ConfigError, match=r"log\.level: 'loud' is not one of"):
        load_config(write(tmp_path, '[log]\nlevel = "loud"\n'), environ={})


def test_environment_overrides_file_and_names_itself_in_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    config = load_config(path, environ={"TRADEBOT_SERVER__PORT": "9100",
                                        "TRADEBOT_PAPER__STARTING_CASH": '"2500.5"'})
    assert config.server.port == 9100
    assert config.paper.starting_cash == Decimal("2500.5")
    with pytest.raises(ConfigError, match="TRADEBOT_SERVER__NOPE"):
        load_config(path, environ={"TRADEBOT_SERVER__NOPE": "1"})


def test_environment_can_edit_one_item_of_a_default_list() -> None:
    config = load_config(environ={"TRADEBOT_FEEDS__0__SYMBOLS": '["ETH-USDT"]'})
    assert config.feeds[0].symbols == ["ETH-USDT"]
    assert config.feeds[0].venue == "binance"


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[server\n"), environ={})


def test_check_config_exits_78_on_a_bad_file_and_0_on_a_good_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "[risk]\nmax_position_notional = -1\n")
    assert main(["check-config", str(bad)]) == 78
    assert "risk.max_position_notional" in capsys.readouterr().err
    assert main(["check-config", str(REPO / "config" / "tradebot.toml")]) == 0


def test_bad_strategy_parameter_is_a_config_error(tmp_path: Path) -> None:
    from tradebot.strategies.registry import build_strategy

    with pytest.raises(ConfigError, match=r"strategies\.s\.params\.fast"):
        build_strategy("s", "ema_cross", {"fast": 1})
    with pytest.raises(ConfigError, match=r"strategies\.s\.kind"):
        build_strategy("s", "nope", {})


def test_unknown_venue_is_a_config_error_listing_the_feed_registrys_venues(
        tmp_path: Path) -> None:
    path = write(tmp_path, '[[feeds]]\nvenue = "bogus"\nsymbols = ["BTC-USDT"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={}, venues=tuple(FEEDS))
    assert str(err.value) == (f"{path}: feeds[0].venue: 'bogus' is not one of "
                              f"{', '.join(FEEDS)}")


def test_every_venue_of_the_feed_registry_is_a_valid_feed_venue(tmp_path: Path) -> None:
    for venue in FEEDS:
        text = f'[[feeds]]\nvenue = "{venue}"\nsymbols = ["X-Y"]\ninstruments_from_venue = true\n'
        config = load_config(write(tmp_path, text), environ={}, venues=tuple(FEEDS))
        assert config.feeds[0].venue == venue


def test_the_loader_checks_venues_against_the_names_its_caller_passes(tmp_path: Path) -> None:
    # config sits below feeds: it holds no venue list of its own, the caller supplies one.
    path = write(tmp_path, '[[feeds]]\nvenue = "newex"\nsymbols = ["X-Y"]\n'
                           'instruments_from_venue = true\n')
    assert load_config(path, environ={}, venues=("newex",)).feeds[0].venue == "newex"
    assert load_config(path, environ={}).feeds[0].venue == "newex"
    with pytest.raises(ConfigError, match=r"feeds\[0\]\.venue: 'newex' is not one of binance$"):
        load_config(path, environ={}, venues=("binance",))


def test_check_config_exits_78_on_an_unknown_venue_naming_key_and_source(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    bad = write(tmp_path, '[[feeds]]\nvenue = "bogus"\nsymbols = ["BTC-USDT"]\n')
    assert main(["check-config", str(bad)]) == 78
    err = capsys.readouterr().err
    assert f"{bad}: feeds[0].venue: 'bogus' is not one of binance, binance_usdm" in err
    monkeypatch.setenv("TRADEBOT_FEEDS__0__VENUE", '"nope"')
    assert main(["check-config", str(REPO / "config" / "tradebot.toml")]) == 78
    assert "TRADEBOT_FEEDS__0__VENUE: feeds[0].venue: 'nope'" in capsys.readouterr().err


def float_keys(value: object = None, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the path of every float key of the default config (first item of each list)."""
    value = Config() if value is None else value
    if dataclasses.is_dataclass(value):
        found = []
        for f in dataclasses.fields(value):
            child = getattr(value, f.name)
            if isinstance(child, float):
                found.append((*path, f.name))
            else:
                found += float_keys(child, (*path, f.name))
        return found
    if isinstance(value, list) and value:
        return float_keys(value[0], (*path, "0"))
    if isinstance(value, dict) and value:
        key = next(iter(value))
        return float_keys(value[key], (*path, key))
    return []


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "+nan"])
def test_nan_and_inf_never_pass_a_float_key_from_the_environment(raw: str) -> None:
    keys = float_keys()
    assert ("features", "bar_interval_s") in keys and ("risk", "max_book_age_s") in keys
    assert ("watchdog", "max_loop_lag_s") in keys and ("feeds", "0", "stale_after_s") in keys
    for parts in keys:
        var = "TRADEBOT_" + "__".join(p.upper() for p in parts)
        with pytest.raises(ConfigError, match="expected a finite number") as err:
            load_config(environ={var: raw})
        assert var in str(err.value), parts
        assert parts[-1] in err.value.key


@pytest.mark.parametrize(("text", "key"), [
    ("[risk]\nmax_book_age_s = nan\n", "risk.max_book_age_s"),
    ("[watchdog]\nmax_loop_lag_s = inf\n", "watchdog.max_loop_lag_s"),
    ("[features]\nbar_interval_s = -inf\n", "features.bar_interval_s"),
    ("[[feeds]]\nstale_after_s = nan\n", "feeds[0].stale_after_s"),
    ("[paper.latency.binance]\njitter_ms = inf\n", "paper.latency.binance.jitter_ms"),
    ("[paper]\nstarting_cash = nan\n", "paper.starting_cash"),
    ("[[strategies]]\nname = 'q'\nkind = 'quoting'\nparams = {min_requote_s = nan}\n",
     "strategies[0].params.min_requote_s"),
])
def test_nan_and_inf_in_a_file_are_config_errors_naming_key_and_file(
        tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="finite number") as err:
        config = load_config(path, environ={})
        # Strategy params are checked when the strategy is built, under the same rules.
        from tradebot.strategies.registry import build_strategy

        for s in config.strategies:
            build_strategy(s.name, s.kind, s.params)
    assert str(path) in str(err.value) or "strategies" in key
    assert key.rsplit(".", 1)[-1] in str(err.value)


def test_an_integer_too_large_for_a_float_key_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"risk\.max_book_age_s: .* too large for a float"):
        load_config(write(tmp_path, f"[risk]\nmax_book_age_s = {10**400}\n"), environ={})


def test_a_directory_or_non_utf8_config_file_is_a_config_error_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="is a directory, not a config file") as err:
        load_config(tmp_path, environ={})
    assert str(tmp_path) in str(err.value)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[paper]\naccount_currency = "€"\n'.encode("cp1252"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0x80 at offset 28\)") as err:
        load_config(latin1, environ={})
    assert str(latin1) in str(err.value)
    assert main(["check-config", str(tmp_path)]) == 78
    assert main(["check-config", str(latin1)]) == 78
    err_text = capsys.readouterr().err
    assert f"{tmp_path}: is a directory" in err_text and f"{latin1}: not UTF-8" in err_text


@pytest.mark.parametrize(("environ", "key"), [
    ({"TRADEBOT_SERVER__PORT__X": "1"}, "server.port"),
    ({"TRADEBOT___X": "1"}, ""),
    ({"TRADEBOT_SERVER____PORT": "1"}, "server."),
    ({"TRADEBOT_FEEDS__X__VENUE": '"binance"'}, "feeds.x"),
    ({"TRADEBOT_FEEDS__²__VENUE": '"binance"'}, "feeds.²"),
])
def test_an_environment_path_through_a_value_or_an_empty_part_is_a_config_error(
        environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ=environ)
    assert err.value.key == key and err.value.source == next(iter(environ))


def test_an_environment_override_of_a_list_item_the_defaults_lack_names_the_key(
        tmp_path: Path) -> None:
    feeds = '[[feeds]]\nvenue = "binance"\nsymbols = ["BTC-USDT"]\n' * 3
    with pytest.raises(ConfigError, match=r"feeds\[2\]\.extra: unknown key"):
        load_config(write(tmp_path, feeds), environ={"TRADEBOT_FEEDS__2__EXTRA__X": "1"})
    with pytest.raises(ConfigError, match="not a table"):
        load_config(write(tmp_path, "server = 5\n"), environ={"TRADEBOT_SERVER__PORT": "1"})


def test_an_environment_value_is_one_toml_value_or_text() -> None:
    # `1\nlog = 2` is not the value 1 with a smuggled second key: it is text, and wrong here.
    with pytest.raises(ConfigError, match=r"server\.port: expected int, got str"):
        load_config(environ={"TRADEBOT_SERVER__PORT": "1\nlog = 2"})


def test_an_unknown_strategy_kind_is_a_config_error_listing_the_registrys_kinds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tradebot.strategies.registry import KINDS

    path = write(tmp_path, '[[strategies]]\nname = "s"\nkind = "momentum"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={}, strategy_kinds=tuple(KINDS))
    assert str(err.value) == (f"{path}: strategies[0].kind: 'momentum' is not one of "
                              f"{', '.join(KINDS)}")
    assert load_config(path, environ={}).strategies[0].kind == "momentum"  # not passed: later
    assert main(["check-config", str(path)]) == 78
    assert "strategies[0].kind: 'momentum' is not one of ema_cross, quoting" in (
        capsys.readouterr().err)


def test_check_config_resolves_the_server_host(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[server]\nhost = "nonexistent.invalid"\n')
    assert main(["check-config", str(path)]) == 78
    assert f"{path}: server.host: cannot resolve 'nonexistent.invalid'" in (
        capsys.readouterr().err)
    assert main(["check-config", str(write(tmp_path, '[server]\nhost = "localhost"\n'))]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", ""])  # noqa: S104 - the case under test
def test_check_config_warns_that_a_non_loopback_host_exposes_the_api(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str) -> None:
    if host == "::" and not socket.has_ipv6:
        pytest.skip("no IPv6")
    path = write(tmp_path, f'[server]\nhost = "{host}"\n')
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("config ok")
    assert f"tradebot: warning: {path}: server.host: " in out.err
    assert "no authentication" in out.err
    # Off, the server binds nothing: nothing to warn about.
    text = f'[server]\nhost = "{host}"\nenabled = false\n'
    assert main(["check-config", str(write(tmp_path, text))]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_config_catches_a_database_driver_that_is_not_installed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    path = write(tmp_path, '[state]\ndatabase_url = "postgresql+psycopg://bot@db/tradebot"\n')
    assert load_config(path, environ={}).state.database_url  # the key itself is fine
    assert main(["check-config", str(path)]) == 78
    err = capsys.readouterr().err
    assert f"{path}: state.database_url: database driver 'psycopg' for postgresql" in err
    assert "not installed" in err
    path = write(tmp_path, '[state]\ndatabase_url = "nosuchdb://x/y"\n')
    assert main(["check-config", str(path)]) == 78
    assert "state.database_url: unknown database dialect 'nosuchdb'" in capsys.readouterr().err


def test_run_logs_a_warning_and_counts_it_when_the_api_binds_beyond_loopback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tradebot.feeds.instruments
    from tests.conftest import metric

    async def stop_here(_config: Config) -> None:
        raise ConfigError("stopped by the test", key="test")

    monkeypatch.setattr(tradebot.feeds.instruments, "live_instruments", stop_here)
    path = write(tmp_path, '[log]\nformat = "json"\n[server]\nhost = "0.0.0.0"\nport = 0\n'
                           f'[state]\ndir = "{tmp_path}/state"\n')
    before = metric("tradebot_config_warnings_total", warning="server_not_loopback")
    assert main(["--config", str(path), "run"]) == 78
    out = capsys.readouterr().out
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    warned = [e for e in events if e["event"] == "server_not_loopback"]
    assert warned and warned[0]["level"] == "warning" and warned[0]["key"] == "server.host"
    assert metric("tradebot_config_warnings_total", warning="server_not_loopback") == before + 1


def test_a_step_too_large_for_a_decimal_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"instruments\[0\]: a step or size is out of range"):
        load_config(environ={"TRADEBOT_INSTRUMENTS__0__TICK_SIZE": '"99e999999"'})
