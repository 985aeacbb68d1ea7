"""Engine setup, migrations and read queries."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, insert, select
from sqlalchemy.engine import make_url

from tradebot.domain import InstrumentId, Liquidity, Side
from tradebot.errors import ConfigError, InvariantError
from tradebot.events import Fill
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
        return int(found)


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
                ts_init=r["ts_init"],
            ))
        except (ValueError, KeyError) as exc:
            raise InvariantError(f"fill row {r['seq']} is unreadable: {exc}") from exc
    return out


def recent_fills(engine: Engine, limit: int = 100) -> list[dict[str, object]]:
    """Return the latest fills as JSON-ready rows, newest first."""
    t = schema.fills
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.seq.desc()).limit(limit)).mappings().all()
    return [{k: (str(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in rows]
