"""A restart values positions at the last mark until the first book (issue 9, item 8)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from tests.unit.store.test_store import BTC, INSTRUMENTS, fill
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.domain import InstrumentId, Side
from tradebot.events import BookUpdated
from tradebot.portfolio.portfolio import Portfolio
from tradebot.recovery import last_marks, recover_portfolio
from tradebot.store import db, schema
from tradebot.store.writer import StoreWriter

ETH = InstrumentId("ETH-USDT", "binance")


def book(bid: float, ask: float, ts: int) -> BookUpdated:
    return BookUpdated(instrument=BTC, best_bid=bid, best_bid_size=1.0, best_ask=ask,
                       best_ask_size=1.0, ts_event=ts, ts_init=ts)


def test_equity_after_a_restart_equals_the_last_equity_point_until_the_first_book(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    engine = db.create_db_engine(url)
    db.migrate(engine)
    bus = Bus()
    portfolio = Portfolio(bus, SimClock(10), INSTRUMENTS, "USDT", Decimal(1000), 3600.0)
    portfolio.start()
    writer = StoreWriter(bus, engine, 64, 10)
    writer.start()
    bus.publish(fill(1, Side.BUY, "0.00300", "61837.63"))
    bus.publish(book(62000.0, 62000.2, 5))
    snap = portfolio.publish_equity()
    assert snap.marks == ((BTC, Decimal("62000.1")),)
    assert writer.close()
    with engine.connect() as conn:
        assert conn.execute(select(schema.marks.c.instrument, schema.marks.c.price,
                                   schema.marks.c.ts)).all() == [("BTC-USDT.binance",
                                                                  Decimal("62000.1"), 10)]

    restarted = Portfolio(Bus(), SimClock(20), INSTRUMENTS, "USDT", Decimal(1000), 3600.0)
    recover_portfolio(engine, restarted, Decimal(1000), 20)
    assert restarted.mark(BTC) == Decimal("62000.1")
    assert restarted.equity() == snap.equity != restarted.cash() + Decimal("0.003") * \
        Decimal("61837.63")  # not valued at cost, as before
    restarted.start()
    restarted._bus.publish(book(61000.0, 61000.2, 21))  # the first book takes over
    assert restarted.mark(BTC) == Decimal("61000.1")


def test_the_latest_of_the_stored_mark_and_the_last_fill_is_restored() -> None:
    stored = {BTC: (Decimal("62000.1"), 10), ETH: (Decimal("3000"), 10)}
    early, late = fill(5, Side.BUY, "0.001", "61000"), fill(30, Side.BUY, "0.001", "63000")
    assert last_marks(stored, [early]) == {BTC: Decimal("62000.1"), ETH: Decimal("3000")}
    assert last_marks(stored, [early, late]) == {BTC: Decimal("63000"), ETH: Decimal("3000")}
    assert last_marks({}, [late]) == {BTC: Decimal("63000")}


def test_restored_marks_keep_only_configured_instruments_and_positive_prices() -> None:
    portfolio = Portfolio(Bus(), SimClock(), INSTRUMENTS, "USDT", Decimal(1000), 3600.0)
    unknown = InstrumentId("DOGE-USDT", "nowhere")
    assert portfolio.restore_marks({BTC: Decimal(0), unknown: Decimal(1)}) == 0
    assert portfolio.mark(BTC) is None
