"""The reconnect backoff: it grows while connections fail, and starts over after a healthy one
(data flowing for at least `backoff_max_s`), not only after a stale or aged-out one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import tradebot.feeds.runner as runner_module
from tradebot.bus import Bus
from tradebot.clock import SimClock
from tradebot.config import FeedConfig
from tradebot.feeds.registry import build_feed
from tradebot.feeds.runner import FeedRunner


class _Done(Exception):
    pass


def backoff_delays(monkeypatch: pytest.MonkeyPatch,
                   sessions: list[tuple[str, float]]) -> list[float]:
    """Run the connection loop over scripted sessions (reason, seconds of data); return delays.

    The jitter is pinned to the top of its range, so each delay is the backoff's cap.
    """
    cfg = FeedConfig(venue="kraken", symbols=[], backoff_initial_s=0.5, backoff_max_s=30.0)
    runner = FeedRunner(build_feed("kraken", [], Bus(), SimClock()), cfg, SimClock(),
                        session=None)  # type: ignore[arg-type]  # never used: no real session
    script = iter(sessions)
    delays: list[float] = []

    async def session_once(n: int) -> str:
        try:
            reason, streamed_s = next(script)
        except StopIteration:
            raise _Done from None
        runner._streamed[n] = streamed_s  # what _read measures on a real connection
        return reason

    async def sleep(delay: float, *_args: Any) -> None:
        delays.append(delay)

    monkeypatch.setattr(runner, "_session_once", session_once)
    monkeypatch.setattr(runner_module.asyncio, "sleep", sleep)
    monkeypatch.setattr(runner_module.random, "uniform", lambda _low, high: high)
    with pytest.raises(_Done):
        asyncio.run(runner._run_connection(0))
    return delays


def test_backoff_grows_while_connections_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    delays = backoff_delays(monkeypatch, [("connection_refused", 0.0)] * 8)
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_connection_healthy_longer_than_the_cap_starts_the_backoff_over(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = [("connection_refused", 0.0)] * 7 + [("connection_lost", 45.0)] + \
        [("connection_refused", 0.0)] * 2
    delays = backoff_delays(monkeypatch, sessions)
    assert delays[6] == 30.0
    assert delays[7:] == [0.5, 1.0, 2.0]  # after 45 s of data: from the beginning


def test_a_connection_that_dropped_soon_after_data_keeps_backing_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = [("connection_refused", 0.0)] * 3 + [("connection_lost", 5.0)]
    assert backoff_delays(monkeypatch, sessions) == [0.5, 1.0, 2.0, 4.0]
