"""The connection runner: one feed's websocket connections, reconnects and book resyncs.

`FeedRunner` connects, subscribes, sends keep-alive messages, reconnects with exponential
backoff and jitter (starting over after a healthy connection: one that delivered frames for at
least `backoff_max_s`), enforces a stale-data deadline per connection and per book, reconnects
before the venue's connection age limit, opens one connection per group of subscriptions where
the venue caps streams per connection, and resyncs books with a per-book rate limit (a REST
snapshot, or an unsubscribe/subscribe where the venue resends its book that way).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
import structlog
import websockets
from prometheus_client import Counter, Gauge

from tradebot.clock import Clock, monotonic
from tradebot.config import FeedConfig
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import DataError
from tradebot.feeds.base import Feed, Tap
from tradebot.log import Throttle

log = structlog.get_logger(__name__)

FEED_CONNECTED = Gauge("tradebot_feed_connected", "1 while the websocket is open", ["venue"])
FEED_RECONNECTS = Counter(
    "tradebot_feed_reconnects_total", "Connections lost or abandoned, by reason",
    ["venue", "reason"],
)
FEED_SNAPSHOT_ERRORS = Counter(
    "tradebot_feed_snapshot_errors_total", "REST snapshot requests that failed", ["venue"]
)

class _Stale(Exception):
    pass


class _Aged(Exception):
    pass


class FeedRunner:
    """Own one feed's websocket connections and book resyncs; never give up, never crash."""

    def __init__(self, feed: Feed, config: FeedConfig, clock: Clock,
                 session: aiohttp.ClientSession, tap: Tap | None = None) -> None:
        self.feed = feed
        self.config = config
        self.clock = clock
        self.session = session
        self._tap = tap
        self._shards = [s for s in feed.split_subscriptions() if s] or [[]]
        self._shard_of = {inst.id: n for n, shard in enumerate(self._shards) for inst in shard}
        self._sockets: dict[int, Any] = {}
        # Seconds from connect to the last frame, per connection: how long data flowed.
        self._streamed: dict[int, float] = {}
        self._pending: dict[InstrumentId, asyncio.Task[None]] = {}
        self._last_request: dict[InstrumentId, float] = {}
        self._throttle = Throttle(30.0)
        self._connected_metric = FEED_CONNECTED.labels(feed.venue)
        self._connected_metric.set(0)
        feed.snapshot_needed = self.request_snapshot

    @property
    def connections(self) -> int:
        """Return the number of connections the feed's subscriptions need."""
        return len(self._shards)

    async def run(self) -> None:
        """Connect and reconnect every connection forever (until cancelled)."""
        if len(self._shards) == 1:
            await self._run_connection(0)
            return
        async with asyncio.TaskGroup() as tg:
            for n in range(len(self._shards)):
                tg.create_task(self._run_connection(n), name=f"feed:{self.feed.venue}:{n}")

    async def _run_connection(self, n: int) -> None:
        ids = [inst.id for inst in self._shards[n]]
        attempt = 0
        while True:
            self._streamed[n] = 0.0
            reason = await self._session_once(n)
            self._sockets.pop(n, None)
            self._connected_metric.set(len(self._sockets))
            FEED_RECONNECTS.labels(self.feed.venue, reason).inc()
            self.feed.invalidate_books(reason, ids)
            self._cancel_snapshots(ids)
            if self._healthy(n, reason):
                attempt = 0
            delay = self._backoff(attempt)
            attempt += 1
            self.feed.set_state("disconnected", reason)
            if self._throttle.ready(reason) is not None:
                log.warning("feed_disconnected", venue=self.feed.venue, reason=reason,
                            retry_in_s=round(delay, 3), attempt=attempt, connection=n)
            await asyncio.sleep(delay)

    def _healthy(self, n: int, reason: str) -> bool:
        # Data flowed for longer than the longest backoff: the venue works again, so the
        # next failure starts from the first delay, not from where the last outage ended.
        if self._streamed[n] >= self.config.backoff_max_s:
            return True
        return reason in ("stale", "max_age") and self.feed.stats.messages > 0

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * (2 ** min(attempt, 30)))
        return random.uniform(cfg.backoff_initial_s, max(cfg.backoff_initial_s, cap))  # noqa: S311

    async def _session_once(self, n: int) -> str:
        feed = self.feed
        shard = self._shards[n]
        feed.set_state("connecting")
        try:
            # A venue's pre-connect step (KuCoin's bullet token) fails like a connect does.
            await feed.prepare_connection(self.session, self.config)
            url = feed.connection_url(self.config, shard)
            async with websockets.connect(url, max_size=2**24, open_timeout=10,
                                          ping_interval=20, ping_timeout=60,
                                          close_timeout=2) as ws:
                self._sockets[n] = ws
                self._connected_metric.set(len(self._sockets))
                feed.set_state("connected")
                log.info("feed_connected", venue=feed.venue, url=url, connection=n)
                for message in feed.connection_messages(shard):
                    await self._send(ws, url, message)
                feed.reset_books("connect", [inst.id for inst in shard])
                await self._read(ws, url, shard, n)
        except _Stale:
            return "stale"
        except _Aged:
            return "max_age"
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return _reason(exc)
        except websockets.ConnectionClosed as exc:
            return "closed_by_venue" if exc.rcvd is not None else "connection_lost"
        except (aiohttp.ClientError, DataError) as exc:
            log.warning("feed_prepare_failed", venue=feed.venue, error=repr(exc), connection=n)
            return "prepare_failed"
        return "closed"

    async def _send(self, ws: Any, url: str, message: str | bytes) -> None:
        if self._tap is not None:
            self._tap("send", self.clock.now_ns(), url,
                      message.encode() if isinstance(message, str) else message)
        await ws.send(message)

    async def _read(self, ws: Any, url: str, shard: Sequence[Instrument], n: int) -> None:
        cfg = self.config
        feed = self.feed
        ids = [inst.id for inst in shard]
        opened = monotonic()
        next_book_check = opened + 1.0
        keepalive = feed.keepalive()
        pinger = None
        if keepalive is not None:
            pinger = asyncio.get_running_loop().create_task(
                self._keepalive(ws, url, *keepalive), name=f"keepalive:{feed.venue}")
        streamed = self._streamed
        try:
            while True:
                now = monotonic()
                streamed[n] = now - opened  # after a frame (or 0 before the first)
                if now - opened > cfg.max_connection_age_s:
                    raise _Aged
                if now >= next_book_check:
                    next_book_check = now + 1.0
                    feed.check_stale_books(self.clock.now_ns(), ids)
                try:
                    # asyncio.timeout, not wait_for: no inner task whose completion can race
                    # (and swallow) a cancellation at shutdown on Python 3.11.
                    async with asyncio.timeout(cfg.stale_after_s):
                        frame = await ws.recv()
                except TimeoutError:
                    raise _Stale from None
                ts = self.clock.now_ns()
                if self._tap is not None:
                    self._tap("recv", ts, url, frame.encode() if isinstance(frame, str) else frame)
                feed.on_frame(frame, ts)
        finally:
            if pinger is not None:
                pinger.cancel()

    async def _keepalive(self, ws: Any, url: str, message: str | bytes, interval: float) -> None:
        try:
            while True:
                await asyncio.sleep(interval)
                await self._send(ws, url, message)
        except websockets.ConnectionClosed:
            return

    def request_snapshot(self, instrument: InstrumentId, reason: str) -> None:
        """Resync `instrument`'s book unless a resync is pending; rate-limited per book.

        A REST snapshot, or the venue's resubscribe messages where it resends books that way.
        """
        n = self._shard_of.get(instrument)
        if n is None or n not in self._sockets or instrument in self._pending:
            return
        wait = self._last_request.get(instrument, -1e9) + self.config.resync_min_interval_s
        delay = max(0.0, wait - monotonic())
        messages = self.feed.resync_messages(self.feed.instruments[instrument], reason)
        coro = (self._fetch(instrument, n, delay) if messages is None
                else self._resubscribe(instrument, n, messages, delay))
        task = asyncio.get_running_loop().create_task(
            coro, name=f"resync:{self.feed.venue}:{instrument.symbol}")
        self._pending[instrument] = task
        task.add_done_callback(lambda _t: self._pending.pop(instrument, None))

    async def _resubscribe(self, iid: InstrumentId, n: int, messages: list[str],
                           delay: float) -> None:
        await asyncio.sleep(delay)
        ws = self._sockets.get(n)
        if ws is None:
            return
        self._last_request[iid] = monotonic()
        log.info("feed_resubscribing", venue=self.feed.venue, symbol=iid.symbol)
        try:
            for message in messages:
                await self._send(ws, ws_url(ws), message)
        except websockets.ConnectionClosed:
            return  # the connection loop reconnects, and reconnecting resubscribes

    async def _fetch(self, iid: InstrumentId, n: int, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.05))  # let the stream buffer a few deltas first
        inst = self.feed.instruments[iid]
        url = self.feed.snapshot_url(self.config, inst)
        attempt = 0
        while n in self._sockets:
            self._last_request[iid] = monotonic()
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    resp.raise_for_status()
                    body = await resp.read()
                ts = self.clock.now_ns()
                if self._tap is not None:
                    self._tap("rest", ts, url, body)
                snapshot = self.feed.parse_snapshot(body, inst, ts)
            except (aiohttp.ClientError, TimeoutError, DataError, OSError) as exc:
                FEED_SNAPSHOT_ERRORS.labels(self.feed.venue).inc()
                log.warning("feed_snapshot_failed", venue=self.feed.venue, symbol=iid.symbol,
                            error=_reason(exc), attempt=attempt)
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1
                continue
            self.feed.on_snapshot(snapshot)
            return

    def _cancel_snapshots(self, ids: Iterable[InstrumentId]) -> None:
        for iid in ids:
            task = self._pending.pop(iid, None)
            if task is not None:
                task.cancel()


def ws_url(ws: Any) -> str:
    """Return the URL a websocket client connection was opened with ('' when unknown)."""
    request = getattr(ws, "request", None)
    return str(getattr(request, "path", "")) if request is not None else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, OSError):
        return "network_error"
    if isinstance(exc, websockets.InvalidHandshake):
        return "handshake_failed"
    return type(exc).__name__.lower()
