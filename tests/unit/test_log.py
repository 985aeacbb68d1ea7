from __future__ import annotations

import io
import json
import logging

import structlog

from tradebot.log import Throttle, setup_logging


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_off_a_terminal_including_stdlib_loggers() -> None:
    out = io.StringIO()
    setup_logging("info", "auto", out)
    structlog.get_logger("tradebot.test").info("order_filled", order_id="O-1", qty="0.1")
    logging.getLogger("websockets.client").warning("connection closed")
    logging.getLogger("sqlalchemy.engine").info("hidden below warning")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "order_filled" and lines[0]["order_id"] == "O-1"
    assert lines[0]["level"] == "info" and "timestamp" in lines[0]
    assert lines[1]["logger"] == "websockets.client" and lines[1]["level"] == "warning"
    assert len(lines) == 2


def test_console_lines_on_a_terminal_and_level_is_configurable() -> None:
    out = Tty()
    setup_logging("warning", "auto", out)
    log = structlog.get_logger("tradebot.test")
    log.info("not_shown")
    log.warning("feed_disconnected", venue="binance")
    text = out.getvalue()
    assert "not_shown" not in text
    assert "feed_disconnected" in text and "venue" in text and not text.startswith("{")


def test_throttle_allows_once_per_interval_and_counts_the_rest() -> None:
    throttle = Throttle(3600)
    assert throttle.ready("k") == 0
    assert throttle.ready("k") is None
    assert throttle.ready("k") is None
    assert throttle.ready("other") == 0
