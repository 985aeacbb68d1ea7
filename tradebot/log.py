"""structlog setup: JSON lines off a terminal, readable lines on one; stdlib loggers routed in."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from tradebot.clock import monotonic

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
# Third-party loggers that speak through ours; their own level stays at WARNING unless debug.
_FOREIGN = ("aiohttp", "websockets", "sqlalchemy", "asyncio", "numba")


def setup_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library to write one event per line to `stream`."""
    stream = stream or sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    for name in _FOREIGN:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


class Throttle:
    """Allow an event once per `interval_s` per key; count what was suppressed in between."""

    def __init__(self, interval_s: float = 30.0) -> None:
        self._interval = interval_s
        self._next: dict[object, float] = {}
        self._suppressed: dict[object, int] = {}

    def ready(self, key: object) -> int | None:
        """Return the number suppressed since the last time if `key` may log now, else None."""
        now = monotonic()
        if now < self._next.get(key, 0.0):
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._next[key] = now + self._interval
        return self._suppressed.pop(key, 0)
