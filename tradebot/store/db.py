"""Engine setup, migrations and read queries."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url

from tradebot.domain import (
    InstrumentId,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    TriggerType,
)
from tradebot.errors import ConfigError, InvariantError
from tradebot.events import Fill, FundingPayment
from tradebot.order import Order, OrderSpec, OrderState
from tradebot.store import schema


def create_db_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL mode and a busy timeout, its directory is created."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; return the version found before."""
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        found = conn.execute(select(schema.schema_version.c.version)).scalar()
        if found is None:
            conn.execute(insert(schema.schema_version).values(version=schema.SCHEMA_VERSION))
            return 0
        if found > schema.SCHEMA_VERSION:
            raise ConfigError(
                f"database schema version {found} is newer than this tradebot "
                f"({schema.SCHEMA_VERSION})", key="state.database_url",
            )
        for version in range(int(found) + 1, schema.SCHEMA_VERSION + 1):
            _add_columns(conn, version)
        if found < schema.SCHEMA_VERSION:
            conn.execute(update(schema.schema_version).values(version=schema.SCHEMA_VERSION))
        return int(found)


def _add_columns(conn: Connection, version: int) -> None:
    """Add the columns `version` introduced to tables created by an older version."""
    for table_name, names in schema.ADDED_COLUMNS.get(version, {}).items():
        table = schema.metadata.tables[table_name]
        # A table `create_all` made just now already has every column.
        present = {c["name"] for c in sa_inspect(conn).get_columns(table_name)}
        for name in names:
            if name in present:
                continue
            ddl = table.c[name].type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table_name} ADD COLUMN {name} {ddl}"))


def load_starting_cash(engine: Engine, currency: str, configured: Decimal, now_ns: int) -> Decimal:
    """Return the account's starting cash, recording the configured one on the first start."""
    with engine.begin() as conn:
        row = conn.execute(select(schema.account.c.starting_cash)
                           .where(schema.account.c.currency == currency)).scalar()
        if row is None:
            conn.execute(insert(schema.account).values(currency=currency,
                                                       starting_cash=configured,
                                                       created_ns=now_ns))
            return configured
        return Decimal(row)


def count_orders(engine: Engine) -> int:
    """Return how many orders the store holds (any state)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(schema.orders)).scalar() or 0)


def load_fills(engine: Engine) -> list[Fill]:
    """Return every recorded fill in the order it was applied."""
    t = schema.fills
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.seq)).mappings().all()
    out = []
    for r in rows:
        try:
            levels = tuple((Decimal(p), Decimal(s)) for p, s in json.loads(r["levels"]))
            out.append(Fill(
                fill_id=r["fill_id"], order_id=r["order_id"], strategy=r["strategy"],
                instrument=InstrumentId.parse(r["instrument"]), side=Side[r["side"]],
                quantity=r["quantity"], price=r["price"], fee=r["fee"],
                fee_currency=r["fee_currency"], liquidity=Liquidity(r["liquidity"]),
                levels=levels, slippage_bps=r["slippage_bps"], ts_event=r["ts_event"],
                ts_init=r["ts_init"], model=r["model"] or "",
                queue_ahead_entry=r["queue_ahead_entry"], queue_ahead_fill=r["queue_ahead_fill"],
                entry_latency_ns=r["entry_latency_ns"] or 0,
                response_latency_ns=r["response_latency_ns"] or 0,
                arrival_mid=r["arrival_mid"], flags=_flags(r["flags"]),
            ))
        except (ValueError, KeyError) as exc:
            raise InvariantError(f"fill row {r['seq']} is unreadable: {exc}") from exc
    return out


def _flags(raw: str | None) -> tuple[str, ...]:
    return tuple(f for f in (raw or "").split(",") if f)


def recent_fills(engine: Engine, limit: int = 100) -> list[dict[str, object]]:
    """Return the latest fills as JSON-ready rows, newest first, with their explanation."""
    t = schema.fills
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.seq.desc()).limit(limit)).mappings().all()
    out: list[dict[str, object]] = []
    for r in rows:
        row = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()}
        row["levels"] = json.loads(r["levels"])
        row["flags"] = list(_flags(r["flags"]))
        out.append(row)
    return out


def recent_bars(engine: Engine, instrument: str | None = None,
                limit: int = 100) -> list[dict[str, object]]:
    """Return the latest completed bars as JSON-ready rows, newest first (one instrument or
    all); `vwap` is None for a bar without volume."""
    t = schema.bars
    query = select(t).order_by(t.c.ts_close.desc(), t.c.seq.desc()).limit(limit)
    if instrument is not None:
        query = query.where(t.c.instrument == instrument)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings().all()]


def load_funding(engine: Engine) -> list[FundingPayment]:
    """Return every recorded funding payment in the order it was applied."""
    t = schema.funding
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.seq)).mappings().all()
    return [FundingPayment(instrument=InstrumentId.parse(r["instrument"]), position=r["position"],
                           mark_price=r["mark_price"], rate=r["rate"], amount=r["amount"],
                           currency=r["currency"], ts_event=r["ts"], ts_init=r["ts"])
            for r in rows]


def load_marks(engine: Engine) -> dict[InstrumentId, tuple[Decimal, int]]:
    """Return the last stored mark of each instrument with the time it was taken."""
    t = schema.marks
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.instrument, t.c.price, t.c.ts)).all()
    try:
        return {InstrumentId.parse(name): (price, ts) for name, price, ts in rows}
    except ValueError as exc:
        raise InvariantError(f"mark row is unreadable: {exc}") from exc


def load_open_orders(engine: Engine) -> list[OrderState]:
    """Return the orders not in a terminal state, oldest first, with their recorded fills.

    The stored reason is not read back (a restored order starts without one), nor is
    `internal`, which has no column: the only internal orders, liquidations, are market
    orders, and a market order still open at a restart is closed without being executed.
    """
    o, f = schema.orders, schema.fills
    open_states = [s.value for s in OrderStatus if not s.is_terminal]
    with engine.connect() as conn:
        rows = conn.execute(select(o).where(o.c.status.in_(open_states))
                            .order_by(o.c.ts_created, o.c.order_id)).mappings().all()
        ids = [r["order_id"] for r in rows]
        fills = conn.execute(select(f.c.order_id, f.c.quantity, f.c.price)
                             .where(f.c.order_id.in_(ids))).all() if ids else []
    done: dict[str, tuple[Decimal, Decimal, int]] = {}
    for order_id, qty, price in fills:
        q, n, k = done.get(order_id, (Decimal(0), Decimal(0), 0))
        done[order_id] = (q + qty, n + qty * price, k + 1)
    return [_open_order(r, done.get(r["order_id"], (Decimal(0), Decimal(0), 0))) for r in rows]


def _open_order(r: Any, done: tuple[Decimal, Decimal, int]) -> OrderState:
    try:
        spec = OrderSpec(
            strategy=r["strategy"], instrument=InstrumentId.parse(r["instrument"]),
            side=Side[r["side"]], quantity=r["quantity"], order_type=OrderType(r["order_type"]),
            limit_price=r["limit_price"], reduce_only=bool(r["reduce_only"]),
            time_in_force=TimeInForce(r["time_in_force"] or "gtc"),
            post_only=bool(r["post_only"]),
            trigger=TriggerType(r["trigger"]) if r["trigger"] else None,
            trigger_price=r["trigger_price"],
        )
        return OrderState(order=Order(r["order_id"], spec, r["ts_created"]),
                          status=OrderStatus(r["status"]), filled=done[0], notional=done[1],
                          fills=done[2], ts_triggered=r["ts_triggered"] or 0)
    except (ValueError, KeyError) as exc:
        raise InvariantError(f"order row {r['order_id']} is unreadable: {exc}") from exc
