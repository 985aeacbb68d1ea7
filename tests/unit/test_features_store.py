"""Completed bars reach the store, the API and strategies; the schema upgrades to the bars table."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, inspect, select

from tradebot.app import App
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import StateConfig, load_config
from tradebot.domain import InstrumentId, Side
from tradebot.events import Bar, Trade
from tradebot.server.http import Readiness, build_app
from tradebot.store import db, schema
from tradebot.store.writer import StoreWriter
from tradebot.strategies.base import Strategy

BTC = InstrumentId("BTC-USDT", "binance")
ETH = InstrumentId("ETH-USDT", "binance")
MINUTE = 60_000_000_000


def bar(instrument: InstrumentId, minute: int, volume: float = 2.0) -> Bar:
    return Bar(instrument=instrument, interval_ns=MINUTE, open=10.0, high=12.0, low=9.0,
               close=11.0, volume=volume, vwap=10.5 if volume else math.nan,
               trades=3 if volume else 1, buy_volume=volume / 2, sell_volume=volume / 2,
               ts_open=minute * MINUTE, ts_event=(minute + 1) * MINUTE,
               ts_init=(minute + 1) * MINUTE + 5)


def test_a_version_2_database_gains_the_bars_table(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/v2.sqlite3")
    old = [t for name, t in schema.metadata.tables.items() if name != "bars"]
    schema.metadata.create_all(engine, tables=old)
    with engine.begin() as conn:
        conn.execute(insert(schema.schema_version).values(version=2))
    assert "bars" not in inspect(engine).get_table_names()
    assert db.migrate(engine) == 2
    assert "bars" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(select(schema.schema_version.c.version)).scalar() == \
            schema.SCHEMA_VERSION
    assert db.migrate(engine) == schema.SCHEMA_VERSION


def test_the_writer_persists_bars_and_the_latest_come_back_newest_first(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    db.migrate(engine)
    bus = Bus()
    writer = StoreWriter(bus, engine, 64, 10)
    writer.start()
    for minute in range(5):
        bus.publish(bar(BTC, minute))
    bus.publish(bar(ETH, 0, volume=0.0))
    assert writer.close()
    rows = db.recent_bars(engine, str(BTC), 3)
    assert [r["ts_close"] for r in rows] == [5 * MINUTE, 4 * MINUTE, 3 * MINUTE]
    assert rows[0]["vwap"] == 10.5 and rows[0]["buy_volume"] == 1.0 and rows[0]["trades"] == 3
    (eth,) = db.recent_bars(engine, str(ETH), 10)
    assert eth["vwap"] is None and eth["volume"] == 0.0
    assert len(db.recent_bars(engine, None, 100)) == 6


async def test_bars_and_features_are_served_as_json() -> None:
    asked: list[tuple[str | None, int]] = []

    def bars(instrument: str | None, limit: int) -> list[dict[str, Any]]:
        asked.append((instrument, limit))
        return [{"instrument": instrument, "close": 1.5}]

    web = build_app(Readiness(lambda: (True, {})), dict, list, list, bars=bars,
                    features=lambda: {str(BTC): {"rsi_14": None, "mid": 100.5}})
    async with TestClient(TestServer(web)) as client:
        resp = await client.get("/api/bars", params={"instrument": str(BTC), "limit": "7"})
        assert resp.status == 200
        assert await resp.json() == [{"instrument": str(BTC), "close": 1.5}]
        resp = await client.get("/api/bars")
        assert resp.status == 200
        for bad in ("0", "x", "100000"):
            assert (await client.get("/api/bars", params={"limit": bad})).status == 400
        resp = await client.get("/api/features")
        assert await resp.json() == {str(BTC): {"rsi_14": None, "mid": 100.5}}
    assert asked == [(str(BTC), 7), (None, 100)]


class Probe(Strategy):
    """Records what the strategy context's feature view shows at each trade and bar."""

    def on_start(self) -> None:
        self.seen: list[float] = []
        self.bars: list[tuple[Bar, float]] = []

    def on_trade(self, event: Trade) -> None:
        self.seen.append(self.ctx.features(event.instrument)["trade_imbalance_100"])

    def on_bar(self, event: Bar) -> None:
        self.bars.append((event, self.ctx.features(event.instrument)["sma_20"]))


def test_strategies_read_features_already_updated_by_the_event_and_bars_are_stored(
        tmp_path: Path) -> None:
    config = load_config(environ={})
    config = dataclasses.replace(config, state=StateConfig(
        database_url=f"sqlite:///{tmp_path}/t.sqlite3"), strategies=[])
    clock = SimClock(MINUTE)
    app = App(config, clock)
    probe = Probe("probe", {})
    app.strategies.add(probe, None)
    app.open_store()
    app.start_trading()
    for i in range(150):
        ts = MINUTE + i * 1_000_000_000
        clock.advance_to(ts)
        app.bus.publish(Trade(instrument=BTC, price=100.0 + i % 7, size=1.0,
                              aggressor=Side.BUY if i % 3 else Side.SELL, trade_id=str(i),
                              ts_event=ts, ts_init=ts))
    # trade_imbalance_100 is defined from the 100th trade: the strategy sees it on that trade.
    assert math.isnan(probe.seen[98]) and math.isfinite(probe.seen[99])
    assert probe.seen[-1] == app.features.features(BTC)["trade_imbalance_100"]
    assert [b.ts_event for b, _ in probe.bars] == [2 * MINUTE, 3 * MINUTE]
    assert math.isnan(probe.bars[0][1])  # sma_20 needs 20 bars
    clock.advance_to(5 * MINUTE)  # the clock closes the quiet market's open bar
    assert app.writer.flush()
    stored = db.recent_bars(app.engine, str(BTC), 10)
    assert [(r["ts_open"], r["trades"]) for r in stored] == [
        (3 * MINUTE, 30), (2 * MINUTE, 60), (MINUTE, 60)]
    assert app.features.snapshot()[str(BTC)]["rsi_14"] is None
    app.close()


def test_disabled_features_leave_the_bus_alone(tmp_path: Path) -> None:
    config = load_config(environ={"TRADEBOT_FEATURES__ENABLED": "false"})
    assert config.features.enabled is False
    config = dataclasses.replace(config, state=StateConfig(
        database_url=f"sqlite:///{tmp_path}/t.sqlite3"))
    app = App(config, SimClock(MINUTE))
    app.bus.publish(Trade(instrument=BTC, price=1.0, size=1.0, aggressor=Side.BUY,
                          trade_id="1", ts_event=MINUTE, ts_init=MINUTE))
    assert app.features.snapshot() == {}
    app.close()
