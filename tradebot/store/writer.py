"""The one writer thread: a bounded queue of facts, written in batches, never dropped.

The loop thread only enqueues. When the queue is full the publisher blocks (backpressure)
after counting it and logging a throttled warning: orders, fills and equity points are never
dropped. A failing write is retried with backoff; while it fails the queue grows, the watchdog
stops pinging and systemd restarts the process, which then replays from what was committed.

At shutdown the flush and the close each wait a bounded time (`state.flush_timeout_s`,
`state.close_timeout_s`), so a writer stuck on a locked or slow database cannot hold the
process past the unit's TimeoutStopSec; what was not committed is logged and counted, and the
next start rebuilds from what was.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from tradebot.bus import Bus
from tradebot.clock import monotonic
from tradebot.events import (
    Bar,
    EquitySnapshot,
    Fill,
    FillFlagged,
    FundingPayment,
    OrderUpdated,
)
from tradebot.log import Throttle
from tradebot.store import schema

log = structlog.get_logger(__name__)

STORE_WRITES = Counter("tradebot_store_writes_total", "Rows written, by table", ["table"])
STORE_ERRORS = Counter("tradebot_store_write_errors_total", "Failed write batches (retried)")
STORE_QUEUE_FULL = Counter(
    "tradebot_store_queue_full_total", "Times a publisher waited because the writer queue was full"
)
STORE_QUEUE_DEPTH = Gauge("tradebot_store_queue_depth", "Items waiting for the writer thread")
STORE_SHUTDOWN_TIMEOUTS = Counter(
    "tradebot_store_shutdown_timeouts_total",
    "Shutdown waits on the writer that expired (step: flush, close)", ["step"],
)
STORE_BATCH_SECONDS = Histogram(
    "tradebot_store_batch_seconds", "Time to write one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

_STOP = object()


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class StoreWriter:
    """Persist orders, fills, equity, funding and completed bars from a bounded queue."""

    def __init__(self, bus: Bus, engine: Engine, queue_size: int, batch_size: int,
                 flush_timeout_s: float = 5.0, close_timeout_s: float = 5.0) -> None:
        self._bus = bus
        self._engine = engine
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._batch_size = batch_size
        self._flush_timeout_s = flush_timeout_s
        self._close_timeout_s = close_timeout_s
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._throttle = Throttle(10.0)
        self.written = 0
        self.last_error = ""
        self.closed_incomplete = False  # the close timed out: facts may be lost
        self._upsert = _upsert_for(engine.dialect.name, schema.orders, "order_id", _ORDER_KEEP)
        self._upsert_mark = _upsert_for(engine.dialect.name, schema.marks, "instrument",
                                        ("price", "ts"))
        STORE_QUEUE_DEPTH.set_function(self._queue.qsize)

    @property
    def queue_ratio(self) -> float:
        """Return how full the queue is (0..1)."""
        return self._queue.qsize() / self._queue.maxsize

    def start(self) -> None:
        """Start the thread and subscribe to the facts it persists."""
        self._thread.start()
        bus = self._bus
        bus.subscribe(OrderUpdated, self.put)
        bus.subscribe(Fill, self.put)
        bus.subscribe(EquitySnapshot, self.put)
        bus.subscribe(FundingPayment, self.put)
        bus.subscribe(FillFlagged, self.put)
        bus.subscribe(Bar, self.put)

    def put(self, item: object) -> None:
        """Enqueue a fact; block if the queue is full (never drop)."""
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            STORE_QUEUE_FULL.inc()
            if self._throttle.ready("full") is not None:
                log.warning("store_queue_full", size=self._queue.maxsize)
            self._queue.put(item)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything enqueued so far is committed; return False on timeout.

        The wait, enqueueing the marker included, is bounded by `timeout` (default: the
        configured flush timeout); when it expires the writer logs `store_flush_timed_out`.
        """
        if not self._thread.is_alive():
            return self._queue.empty()
        limit = self._flush_timeout_s if timeout is None else timeout
        deadline = monotonic() + limit
        marker = _Flush()
        if self._enqueue(marker, deadline) and marker.done.wait(_left(deadline)):
            return True
        self._expired("flush", limit)
        return False

    def stop(self) -> None:
        """Write what is queued and stop the thread, waiting at most the close timeout."""
        self.close()

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the thread and return whether everything was written.

        Waits at most `timeout` (default: the configured close timeout); when it expires the
        writer logs `store_close_incomplete` and leaves the thread (a daemon thread) behind.
        """
        if not self._thread.is_alive():
            return self._queue.empty()
        limit = self._close_timeout_s if timeout is None else timeout
        deadline = monotonic() + limit
        if self._enqueue(_STOP, deadline):
            self._thread.join(_left(deadline))
        if self._thread.is_alive():
            self.closed_incomplete = True
            self._expired("close", limit)
            return False
        return True

    def _enqueue(self, item: object, deadline: float) -> bool:
        try:
            self._queue.put(item, timeout=_left(deadline))
        except queue.Full:
            return False
        return True

    def _expired(self, step: str, limit: float) -> None:
        STORE_SHUTDOWN_TIMEOUTS.labels(step).inc()
        event = "store_flush_timed_out" if step == "flush" else "store_close_incomplete"
        log.error(event, timeout_s=limit, queued=self._queue.qsize(),
                  last_error=self.last_error or None)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            items = [b for b in batch if not isinstance(b, _Flush) and b is not _STOP]
            if items:
                self._write_with_retry(items)
            for b in batch:
                if isinstance(b, _Flush):
                    b.done.set()
            if any(b is _STOP for b in batch):
                return

    def _write_with_retry(self, items: list[Any]) -> None:
        delay = 0.1
        while True:
            started = monotonic()
            try:
                with self._engine.begin() as conn:
                    for item in items:
                        self._write(conn, item)
            except SQLAlchemyError as exc:
                STORE_ERRORS.inc()
                self.last_error = str(exc)[:500]
                log.error("store_write_failed", error=self.last_error, items=len(items),
                          retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            STORE_BATCH_SECONDS.observe(monotonic() - started)
            self.written += len(items)
            return

    def _write(self, conn: Connection, item: Any) -> None:
        if isinstance(item, Fill):
            conn.execute(insert(schema.fills).values(**fill_row(item)))
            STORE_WRITES.labels("fills").inc()
        elif isinstance(item, OrderUpdated):
            conn.execute(self._upsert(order_row(item)))
            STORE_WRITES.labels("orders").inc()
        elif isinstance(item, EquitySnapshot):
            conn.execute(insert(schema.equity).values(
                ts=item.ts_event, currency=item.currency, equity=item.equity, cash=item.cash,
                realized_pnl=item.realized_pnl, unrealized_pnl=item.unrealized_pnl,
                fees=item.fees,
            ))
            STORE_WRITES.labels("equity").inc()
            for instrument, price in item.marks:
                conn.execute(self._upsert_mark({"instrument": str(instrument), "price": price,
                                                "ts": item.ts_event}))
                STORE_WRITES.labels("marks").inc()
        elif isinstance(item, FundingPayment):
            conn.execute(insert(schema.funding).values(
                ts=item.ts_event, instrument=str(item.instrument), position=item.position,
                mark_price=item.mark_price, rate=item.rate, amount=item.amount,
                currency=item.currency,
            ))
            STORE_WRITES.labels("funding").inc()
        elif isinstance(item, FillFlagged):
            _add_flag(conn, item)
            STORE_WRITES.labels("fill_flags").inc()
        elif isinstance(item, Bar):
            conn.execute(insert(schema.bars).values(**bar_row(item)))
            STORE_WRITES.labels("bars").inc()
        else:
            raise TypeError(f"store writer cannot persist {type(item).__name__}")


def _left(deadline: float) -> float:
    return max(0.0, deadline - monotonic())


def fill_row(fill: Fill) -> dict[str, Any]:
    """Return the database row of a fill, with its explanation."""
    return dict(
        fill_id=fill.fill_id, order_id=fill.order_id, strategy=fill.strategy,
        instrument=str(fill.instrument), side=fill.side.name, quantity=fill.quantity,
        price=fill.price, fee=fill.fee, fee_currency=fill.fee_currency,
        liquidity=fill.liquidity.value,
        levels=json.dumps([[str(p), str(s)] for p, s in fill.levels]),
        slippage_bps=fill.slippage_bps, ts_event=fill.ts_event, ts_init=fill.ts_init,
        model=fill.model, queue_ahead_entry=fill.queue_ahead_entry,
        queue_ahead_fill=fill.queue_ahead_fill, entry_latency_ns=fill.entry_latency_ns,
        response_latency_ns=fill.response_latency_ns, arrival_mid=fill.arrival_mid,
        flags=",".join(fill.flags),
    )


def bar_row(bar: Bar) -> dict[str, Any]:
    """Return the database row of a completed bar."""
    return dict(
        instrument=str(bar.instrument), interval_ns=bar.interval_ns, ts_open=bar.ts_open,
        ts_close=bar.ts_event, open=bar.open, high=bar.high, low=bar.low, close=bar.close,
        volume=bar.volume, vwap=None if math.isnan(bar.vwap) else bar.vwap, trades=bar.trades,
        buy_volume=bar.buy_volume, sell_volume=bar.sell_volume, ts_init=bar.ts_init,
    )


def _add_flag(conn: Connection, item: FillFlagged) -> None:
    t = schema.fills
    current = conn.execute(select(t.c.flags).where(t.c.fill_id == item.fill_id)).scalar()
    flags = [f for f in (current or "").split(",") if f]
    if item.flag not in flags:
        flags.append(item.flag)
    conn.execute(update(t).where(t.c.fill_id == item.fill_id).values(flags=",".join(flags)))


def order_row(event: OrderUpdated) -> dict[str, Any]:
    """Return the database row of an order's latest state (db.load_open_orders reads it back)."""
    state = event.state
    order = state.order
    spec = order.spec
    return dict(
        order_id=order.order_id, strategy=spec.strategy, instrument=str(spec.instrument),
        side=spec.side.name, order_type=spec.order_type.value, quantity=spec.quantity,
        limit_price=spec.limit_price, status=state.status.value,
        filled_quantity=state.filled, average_price=state.average_price,
        reason=state.reason, ts_created=order.ts_created or event.ts_event,
        ts_updated=event.ts_event, time_in_force=spec.time_in_force.value,
        post_only=spec.post_only, reduce_only=spec.reduce_only,
        trigger=spec.trigger.value if spec.trigger is not None else None,
        trigger_price=spec.trigger_price, ts_triggered=state.ts_triggered or None,
    )


# The columns an order's later states overwrite.
_ORDER_KEEP = ("status", "filled_quantity", "average_price", "reason", "ts_updated", "quantity",
               "limit_price", "ts_triggered")


def _upsert_for(dialect: str, table: Table, key: str,
                keep: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    mod = postgresql if dialect == "postgresql" else sqlite

    def build(row: dict[str, Any]) -> Any:
        stmt = mod.insert(table).values(**row)
        return stmt.on_conflict_do_update(
            index_elements=[key], set_={k: stmt.excluded[k] for k in keep}
        )

    return build
