"""One instrument resolver for live runs, replays and serve-recording."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.conftest import metric
from tradebot.config import Config, FeedConfig, InstrumentConfig
from tradebot.domain import Instrument, InstrumentId, MarketKind
from tradebot.errors import ConfigError, DataError
from tradebot.feeds.instruments import live_instruments, replay_instruments, resolve
from tradebot.feeds.replay import inspect

BTC = InstrumentConfig(venue="okx", symbol="BTC-USDT", venue_symbol="BTC-USDT", base="BTC",
                       quote="USDT", tick_size=Decimal("0.1"))
ETH = InstrumentConfig(venue="okx", symbol="ETH-USDT", venue_symbol="ETH-USDT", base="ETH",
                       quote="USDT")


def listed(symbol: str, tick: str = "0.01") -> Instrument:
    base, quote = symbol.split("-")
    return Instrument(id=InstrumentId(symbol, "okx"), venue_symbol=symbol, kind=MarketKind.SPOT,
                      base=base, quote=quote, tick_size=Decimal(tick),
                      lot_size=Decimal("0.0001"), min_notional=Decimal(0))


def config(symbols: list[str], instruments: list[InstrumentConfig],
           from_venue: bool = False) -> Config:
    return Config(feeds=[FeedConfig(venue="okx", symbols=symbols,
                                    instruments_from_venue=from_venue)],
                  instruments=instruments)


def test_config_instruments_override_the_venues_list() -> None:
    sol = listed("SOL-USDT")
    run = resolve(config(["BTC-USDT", "SOL-USDT"], [BTC]),
                  {sol.id: sol, BTC.build().id: listed("BTC-USDT", "0.5")})
    assert run.feeds == {"okx": (BTC.build(), sol)}
    assert run.instruments[BTC.build().id].tick_size == Decimal("0.1")
    assert list(run.instruments) == [sol.id, BTC.build().id]


def test_a_replay_of_a_recording_without_a_list_follows_what_its_client_subscribed(
        tmp_path: Path) -> None:
    path = tmp_path / "okx-2024010100.gz"
    path.write_bytes(
        b"1 #tradebot venue=okx\n"
        b'2 < {"op":"subscribe","args":[{"channel":"books","instId":"ETH-USDT"}]}\n'
        b'3 {"event":"subscribe"}\n')
    rec = inspect(path)
    run = replay_instruments(config(["BTC-USDT"], [BTC, ETH]), [rec])
    assert run.feeds == {"okx": (ETH.build(),)}
    assert rec.depth_symbols == []  # the recording is read, never written
    with pytest.raises(DataError, match="none of its subscriptions"):
        replay_instruments(config(["BTC-USDT"], [BTC]), [rec])


def test_a_replayed_symbol_in_no_list_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "depth.gz"
    path.write_bytes(b'1 {"stream":"dogeusdt@depth@100ms","data":{"e":"depthUpdate"}}\n')
    with pytest.raises(ConfigError, match="DOGEUSDT on binance has no"):
        replay_instruments(config([], []), [inspect(path)])


def test_a_live_venue_that_cannot_be_reached_falls_back_to_the_config() -> None:
    async def unreachable(_session: aiohttp.ClientSession,
                          _cfg: FeedConfig) -> dict[InstrumentId, Instrument]:
        raise aiohttp.ClientConnectionError("no route")

    before = metric("tradebot_instrument_fetch_errors_total", venue="okx")
    with capture_logs() as logs:
        run = asyncio.run(live_instruments(config(["BTC-USDT"], [BTC], True), unreachable))
    assert run.feeds == {"okx": (BTC.build(),)}
    assert metric("tradebot_instrument_fetch_errors_total", venue="okx") == before + 1
    assert [e["event"] for e in logs] == ["instruments_fetch_failed", "instruments_loaded"]
    with pytest.raises(ConfigError, match="ETH-USDT on okx: not in the venue's"):
        asyncio.run(live_instruments(config(["ETH-USDT"], [BTC], True), unreachable))


def test_a_live_run_follows_the_fetched_list_unless_the_config_says_otherwise() -> None:
    async def fetched(_session: aiohttp.ClientSession,
                      cfg: FeedConfig) -> dict[InstrumentId, Instrument]:
        return {i.id: i for i in (listed("ETH-USDT"), listed("BTC-USDT", "0.5"))}

    run = asyncio.run(live_instruments(config(["BTC-USDT", "ETH-USDT"], [BTC], True), fetched))
    assert run.feeds == {"okx": (BTC.build(), listed("ETH-USDT"))}
    # Without instruments_from_venue nothing is fetched.
    run = asyncio.run(live_instruments(config(["BTC-USDT"], [BTC]), fetched))
    assert dict(run.instruments) == {BTC.build().id: BTC.build()}
