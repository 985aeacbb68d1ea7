from __future__ import annotations

import dataclasses
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
