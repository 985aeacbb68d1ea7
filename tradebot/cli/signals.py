"""An event set by SIGTERM/SIGINT (or after a duration), for commands that run until told."""

from __future__ import annotations

import asyncio
import signal


async def until_signal(duration_s: float = 0.0) -> asyncio.Event:
    """Return an event that SIGTERM, SIGINT or `duration_s` (when > 0) sets."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration_s > 0:
        loop.call_later(duration_s, stop.set)
    return stop
