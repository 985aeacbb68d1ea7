from __future__ import annotations

import dataclasses
import threading
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select, text, update

from tests.conftest import metric
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import load_config
from tradebot.domain import (
    InstrumentId,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TriggerType,
)
from tradebot.events import BookUpdated, EquitySnapshot, Fill, OrderUpdated
from tradebot.order import Order, OrderSpec, OrderState
from tradebot.portfolio.portfolio import Portfolio
from tradebot.store import db, schema
from tradebot.store.writer import StoreWriter

INSTRUMENTS = load_config(environ={}).instrument_map()
BTC = InstrumentId("BTC-USDT", "binance")


def fill(n: int, side: Side, qty: str, price: str) -> Fill:
    return Fill(fill_id=f"F{n}", order_id=f"O{n}", strategy="s", instrument=BTC, side=side,
                quantity=Decimal(qty), price=Decimal(price), fee=Decimal("0.0617") * n,
                fee_currency="USDT", liquidity=Liquidity.TAKER,
                levels=((Decimal(price), Decimal(qty)),), slippage_bps=0.5, ts_event=n,
                ts_init=n)


def order(n: int, status: OrderStatus) -> OrderUpdated:
    spec = OrderSpec(strategy="s", instrument=BTC, side=Side.BUY, quantity=Decimal("0.001"),
                     order_type=OrderType.MARKET)
    return OrderUpdated(state=OrderState(Order(f"O{n}", spec, 0), status, Decimal(0), Decimal(0)),
                        ts_event=n, ts_init=n)


def start(url: str) -> tuple[Bus, Portfolio, StoreWriter]:
    engine = db.create_db_engine(url)
    db.migrate(engine)
    bus = Bus()
    cash = db.load_starting_cash(engine, "USDT", Decimal(1000), 0)
    portfolio = Portfolio(bus, SimClock(), INSTRUMENTS, "USDT", cash, 10.0)
    for f in db.load_fills(engine):
        portfolio.on_fill(f)
    portfolio.start()
    writer = StoreWriter(bus, engine, 64, 10)
    writer.start()
    return bus, portfolio, writer


def test_sqlite_runs_in_wal_mode_in_the_configured_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/sub/dir/t.sqlite3"
    engine = db.create_db_engine(url)
    assert db.migrate(engine) == 0
    assert db.migrate(engine) == schema.SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert (tmp_path / "sub" / "dir" / "t.sqlite3").exists()


def test_stop_and_start_continue_with_the_same_cash_and_positions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    bus, portfolio, writer = start(url)
    bus.publish(order(1, OrderStatus.SUBMITTED))
    bus.publish(fill(1, Side.BUY, "0.00300", "61837.63"))
    bus.publish(order(1, OrderStatus.FILLED))
    bus.publish(fill(2, Side.SELL, "0.00100", "61900.01"))
    bus.publish(BookUpdated(instrument=BTC, best_bid=61900.0, best_bid_size=1.0,
                            best_ask=61900.2, best_ask_size=1.0, ts_event=3, ts_init=3))
    snap = portfolio.publish_equity()
    assert writer.close()
    before = portfolio.snapshot()

    bus2, portfolio2, writer2 = start(url)
    bus2.publish(BookUpdated(instrument=BTC, best_bid=61900.0, best_bid_size=1.0,
                             best_ask=61900.2, best_ask_size=1.0, ts_event=3, ts_init=3))
    after = portfolio2.snapshot()
    assert after == before
    assert portfolio2.cash() == Decimal(1000) - Decimal("0.00300") * Decimal("61837.63") \
        + Decimal("0.00100") * Decimal("61900.01") - Decimal("0.0617") * 3
    assert portfolio2.position(BTC) == Decimal("0.00200")
    with writer2._engine.connect() as conn:
        rows = conn.execute(select(schema.orders.c.status)).scalars().all()
        assert rows == ["filled"]
        stored = conn.execute(select(schema.equity.c.equity)).scalar_one()
        assert stored == snap.equity  # exact, not a rounded float
    writer2.close()


def test_configured_starting_cash_is_recorded_once(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    db.migrate(engine)
    assert db.load_starting_cash(engine, "USDT", Decimal("500.25"), 1) == Decimal("500.25")
    assert db.load_starting_cash(engine, "USDT", Decimal("9999"), 2) == Decimal("500.25")


def test_a_full_queue_blocks_the_publisher_and_loses_nothing(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    db.migrate(engine)
    writer = StoreWriter(Bus(), engine, 16, 4)
    before = metric("tradebot_store_queue_full_total")
    snaps = [EquitySnapshot(currency="USDT", equity=Decimal(i), cash=Decimal(i),
                            realized_pnl=Decimal(0), unrealized_pnl=Decimal(0), fees=Decimal(0),
                            ts_event=i, ts_init=i) for i in range(100)]
    producer = threading.Thread(target=lambda: [writer.put(s) for s in snaps])
    producer.start()
    producer.join(0.5)
    assert producer.is_alive()  # blocked on the full queue, nothing dropped
    writer.start()
    producer.join(10)
    assert writer.close()
    assert metric("tradebot_store_queue_full_total") > before
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.equity)).scalar() == 100


def test_a_version_3_database_gains_the_trigger_time_and_keeps_its_open_orders(
        tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    db.migrate(engine)
    bus = Bus()
    writer = StoreWriter(bus, engine, 16, 4)
    writer.start()
    bus.publish(order(1, OrderStatus.ACCEPTED))
    assert writer.close()
    with engine.begin() as conn:  # what version 3 left on disk
        conn.execute(text("ALTER TABLE orders DROP COLUMN ts_triggered"))
        conn.execute(update(schema.schema_version).values(version=3))
    assert db.migrate(engine) == 3
    (restored,) = db.load_open_orders(engine)
    assert restored.order.order_id == "O1" and restored.ts_triggered == 0
    bus = Bus()
    writer = StoreWriter(bus, engine, 16, 4)
    writer.start()
    accepted = order(1, OrderStatus.ACCEPTED)
    bus.publish(dataclasses.replace(
        accepted, state=dataclasses.replace(accepted.state, ts_triggered=7)))
    assert writer.close()
    assert db.load_open_orders(engine)[0].ts_triggered == 7


def test_an_open_order_reads_back_as_the_state_that_was_written(tmp_path: Path) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path}/t.sqlite3")
    db.migrate(engine)
    bus = Bus()
    writer = StoreWriter(bus, engine, 16, 4)
    writer.start()
    spec = OrderSpec(strategy="s", instrument=BTC, side=Side.SELL, quantity=Decimal("0.002"),
                     order_type=OrderType.LIMIT, limit_price=Decimal("61000.5"),
                     reduce_only=True, time_in_force=TimeInForce.IOC, post_only=True,
                     trigger=TriggerType.STOP, trigger_price=Decimal("60000.1"))
    state = OrderState(Order("O9", spec, 5), OrderStatus.ACCEPTED, Decimal(0), Decimal(0),
                       ts_triggered=8)
    bus.publish(OrderUpdated(state=state, ts_event=9, ts_init=9))
    assert writer.close()
    assert db.load_open_orders(engine) == [state]
