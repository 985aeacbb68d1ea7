"""The writer's shutdown waits are bounded: a stuck database cannot hold the process past
the unit's TimeoutStopSec (store/writer.py, state.flush_timeout_s and state.close_timeout_s)."""

from __future__ import annotations

import configparser
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import REPO, metric
from tradebot.bus import Bus
from tradebot.config import load_config
from tradebot.config.validate import STOP_WAIT_BUDGET_S
from tradebot.errors import ConfigError
from tradebot.events import EquitySnapshot
from tradebot.store import db
from tradebot.store.writer import StoreWriter


def snap(n: int) -> EquitySnapshot:
    one = Decimal(n)
    return EquitySnapshot(currency="USDT", equity=one, cash=one, realized_pnl=one,
                          unrealized_pnl=one, fees=one, ts_event=n, ts_init=n)


@pytest.fixture
def locked_db(tmp_path: Path) -> Iterator[tuple[str, sqlite3.Connection]]:
    """A migrated SQLite store whose write lock another connection holds."""
    path = tmp_path / "t.sqlite3"
    url = f"sqlite:///{path}"
    engine = db.create_db_engine(url)
    db.migrate(engine)
    engine.dispose()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # what a second daemon or a long query would hold
    yield url, other
    other.execute("ROLLBACK")
    other.close()


def test_flush_and_close_return_in_time_when_the_database_is_locked(
        locked_db: tuple[str, sqlite3.Connection]) -> None:
    url, _other = locked_db
    engine = db.create_db_engine(url)  # busy timeout 30 s: each write waits that long
    writer = StoreWriter(Bus(), engine, 64, 10, flush_timeout_s=0.3, close_timeout_s=0.4)
    writer.start()
    flushes = metric("tradebot_store_shutdown_timeouts_total", step="flush")
    closes = metric("tradebot_store_shutdown_timeouts_total", step="close")
    writer.put(snap(1))
    started = time.monotonic()
    with capture_logs() as logs:
        assert not writer.flush()
        writer.stop()
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, elapsed
    assert writer.closed_incomplete
    events = [e["event"] for e in logs]
    assert events == ["store_flush_timed_out", "store_close_incomplete"], logs
    assert logs[0]["timeout_s"] == 0.3 and logs[1]["timeout_s"] == 0.4
    assert metric("tradebot_store_shutdown_timeouts_total", step="flush") == flushes + 1
    assert metric("tradebot_store_shutdown_timeouts_total", step="close") == closes + 1


def test_a_full_queue_does_not_make_the_bounded_waits_block(
        locked_db: tuple[str, sqlite3.Connection]) -> None:
    url, _other = locked_db
    writer = StoreWriter(Bus(), db.create_db_engine(url), 16, 1, flush_timeout_s=0.2,
                         close_timeout_s=0.2)
    writer.start()
    writer.put(snap(0))
    time.sleep(0.2)  # the thread took it and waits on the lock
    for n in range(1, 17):
        writer.put(snap(n))  # the queue is now full
    started = time.monotonic()
    with capture_logs():
        assert not writer.flush()
        assert not writer.close()
    assert time.monotonic() - started < 1.5


def test_the_writer_commits_everything_when_the_database_frees_up_in_time(
        locked_db: tuple[str, sqlite3.Connection]) -> None:
    url, other = locked_db
    engine = db.create_db_engine(url)
    writer = StoreWriter(Bus(), engine, 64, 10, flush_timeout_s=5.0, close_timeout_s=5.0)
    writer.start()
    writer.put(snap(1))
    time.sleep(0.2)
    other.execute("ROLLBACK")
    other.execute("BEGIN")  # the fixture's teardown rolls this back
    assert writer.flush()
    assert writer.close() and not writer.closed_incomplete
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from equity").scalar() == 1


def test_the_shutdown_waits_must_fit_the_units_stop_timeout(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((REPO / "tradebot.service").read_text())
    stop_timeout = float(unit["Service"]["TimeoutStopSec"])
    # the rest of the stop (strategies, feeds, server) needs a few seconds too
    assert stop_timeout - 5 >= STOP_WAIT_BUDGET_S
    state = load_config(environ={}).state
    assert state.flush_timeout_s + state.close_timeout_s <= STOP_WAIT_BUDGET_S
    path = tmp_path / "slow.toml"
    path.write_text("[state]\nflush_timeout_s = 10.0\nclose_timeout_s = 10.0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "state.close_timeout_s" in str(caught.value) and str(path) in str(caught.value)
