"""The database schema (SQLAlchemy 2.0 Core). Money is stored exactly: NUMERIC on
PostgreSQL, decimal text on SQLite (whose NUMERIC would round through a float)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

SCHEMA_VERSION = 5


class Money(TypeDecorator[Decimal]):
    """An exact decimal column."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(38, 18, asdecimal=True))
        return dialect.type_descriptor(String(64))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"Money column needs a Decimal, got {type(value).__name__}")
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

account = Table(
    "account", metadata,
    Column("currency", String(16), primary_key=True),
    Column("starting_cash", Money, nullable=False),
    Column("created_ns", BigInteger, nullable=False),
)

orders = Table(
    "orders", metadata,
    Column("order_id", String(64), primary_key=True),
    Column("strategy", String(64), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("order_type", String(16), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("limit_price", Money),
    Column("status", String(20), nullable=False),
    Column("filled_quantity", Money, nullable=False),
    Column("average_price", Money),
    Column("reason", Text, nullable=False),
    Column("ts_created", BigInteger, nullable=False),
    Column("ts_updated", BigInteger, nullable=False),
    # v2: what a restart needs to put a resting order back at the simulated venue.
    Column("time_in_force", String(4)),
    Column("post_only", Boolean),
    Column("reduce_only", Boolean),
    Column("trigger", String(16)),
    Column("trigger_price", Money),
    # v4: when a conditional order's trigger traded (NULL: not triggered), so a restart puts a
    # triggered stop-limit back in the book instead of waiting for its trigger again.
    Column("ts_triggered", BigInteger),
)

fills = Table(
    "fills", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("fill_id", String(80), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("strategy", String(64), nullable=False),
    Column("instrument", String(64), nullable=False),
    Column("side", String(4), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("fee", Money, nullable=False),
    Column("fee_currency", String(16), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("levels", Text, nullable=False),  # JSON [[price, size], ...] as decimal strings
    Column("slippage_bps", Float, nullable=False),
    Column("ts_event", BigInteger, nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    # v2: why the paper venue filled it (execution/paper.py).
    Column("model", String(40)),
    Column("queue_ahead_entry", Money),
    Column("queue_ahead_fill", Money),
    Column("entry_latency_ns", BigInteger),
    Column("response_latency_ns", BigInteger),
    Column("arrival_mid", Money),
    Column("flags", Text),  # comma-separated: deep_queue, adverse_move
)

funding = Table(
    "funding", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("instrument", String(64), nullable=False),
    Column("position", Money, nullable=False),
    Column("mark_price", Money, nullable=False),
    Column("rate", Money, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(16), nullable=False),
)

# v3: completed time bars from the feature engine (`create_all` adds the table to older DBs).
bars = Table(
    "bars", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("instrument", String(64), nullable=False),
    Column("interval_ns", BigInteger, nullable=False),
    Column("ts_open", BigInteger, nullable=False),
    Column("ts_close", BigInteger, nullable=False),
    Column("open", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("low", Float, nullable=False),
    Column("close", Float, nullable=False),
    Column("volume", Float, nullable=False),
    Column("vwap", Float),  # NULL for a bar of zero volume
    Column("trades", Integer, nullable=False),
    Column("buy_volume", Float, nullable=False),
    Column("sell_volume", Float, nullable=False),
    Column("ts_init", BigInteger, nullable=False),
    Index("ix_bars_instrument_close", "instrument", "ts_close"),
)

# Columns each version added to tables that already existed, for `db.migrate`.
ADDED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {
        "orders": ("time_in_force", "post_only", "reduce_only", "trigger", "trigger_price"),
        "fills": ("model", "queue_ahead_entry", "queue_ahead_fill", "entry_latency_ns",
                  "response_latency_ns", "arrival_mid", "flags"),
    },
    4: {"orders": ("ts_triggered",)},
}

equity = Table(
    "equity", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("currency", String(16), nullable=False),
    Column("equity", Money, nullable=False),
    Column("cash", Money, nullable=False),
    Column("realized_pnl", Money, nullable=False),
    Column("unrealized_pnl", Money, nullable=False),
    Column("fees", Money, nullable=False),
)

# v5: the latest mark of each open position, written with every equity point, so a restart
# values positions at it until the first book (`create_all` adds the table to older DBs).
marks = Table(
    "marks", metadata,
    Column("instrument", String(64), primary_key=True),
    Column("price", Money, nullable=False),
    Column("ts", BigInteger, nullable=False),
)
