"""What a run did: the fill digest, order counts and the replay summary `--json` prints."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from tradebot.bus import Bus
from tradebot.events import Fill, OrderDenied, SubmitOrder
from tradebot.feeds.base import Feed
from tradebot.feeds.lines import Damage


class FillDigest:
    """A SHA-256 over the fill log, so two runs can be compared byte for byte."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def on_fill(self, fill: Fill) -> None:
        """Add one fill."""
        self._hash.update(
            f"{fill.fill_id}|{fill.instrument}|{fill.side.name}|{fill.quantity}|{fill.price}|"
            f"{fill.fee}|{fill.ts_event}|{fill.liquidity.value}|{fill.levels}|{fill.model}|"
            f"{fill.queue_ahead_entry}|{fill.queue_ahead_fill}|{fill.entry_latency_ns}|"
            f"{fill.response_latency_ns}|{fill.arrival_mid}|{fill.flags}\n".encode()
        )

    def hexdigest(self) -> str:
        """Return the digest so far."""
        return self._hash.hexdigest()


class RunRecord:
    """Count orders, denials and fills and digest the fills, from the bus."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self.digest = FillDigest()
        self.orders = 0
        self.denied = 0
        self.fills = 0

    def start(self) -> None:
        """Follow submitted orders, denials and fills."""
        self._bus.subscribe(SubmitOrder, self._on_order)
        self._bus.subscribe(OrderDenied, self._on_denied)
        self._bus.subscribe(Fill, self._on_fill)

    def stop(self) -> None:
        """Nothing to release (the counts stay readable)."""

    def _on_order(self, _event: SubmitOrder) -> None:
        self.orders += 1

    def _on_denied(self, _event: OrderDenied) -> None:
        self.denied += 1

    def _on_fill(self, fill: Fill) -> None:
        self.digest.on_fill(fill)
        self.fills += 1


def replay_summary(feeds: Iterable[Feed], record: RunRecord, messages: int, elapsed: float,
                   equity: Decimal, *, damaged: Sequence[Damage] = (),
                   clock_jumps: int = 0) -> dict[str, Any]:
    """Return the replay summary: books and their integrity, orders, fills, equity, speed.

    `damaged`: where recordings stopped being readable; `clock_jumps`: lines whose receive
    time jumped beyond the limit and played at the time before them.
    """
    feeds = list(feeds)
    books = [b for f in feeds for b in f.books.values()]
    parse_errors = sum(sum(f.stats.parse_errors.values()) for f in feeds)
    return {
        "messages": messages,
        "gaps": sum(b.gaps for b in books),
        "resyncs": sum(b.resyncs for b in books),
        "parse_errors": parse_errors,
        "clock_jumps": clock_jumps,
        "damaged": [{"file": d.file, "offset": d.offset, "error": d.error} for d in damaged],
        "checksums_ok": sum(b.checksums_ok for b in books),
        "checksums_failed": sum(b.checksums_failed for b in books),
        "books_valid": all(b.valid for b in books),
        "books": {str(b.instrument.id): {"state": b.state.value, "gaps": b.gaps,
                                         "snapshots": b.snapshots,
                                         "stale_dropped": b.stale_dropped,
                                         "checksums_ok": b.checksums_ok,
                                         "checksums_failed": b.checksums_failed}
                  for b in books},
        "orders": record.orders,
        "denied": record.denied,
        "fills": record.fills,
        "final_equity": str(equity),
        "fills_sha256": record.digest.hexdigest(),
        "elapsed_s": round(elapsed, 3),
        "messages_per_second": round(messages / elapsed) if elapsed > 0 else 0,
    }
