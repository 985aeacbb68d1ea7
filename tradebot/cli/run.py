"""`tradebot run`: the daemon on live feeds."""

from __future__ import annotations

import structlog
import uvloop
from prometheus_client import Counter
from sqlalchemy.engine import make_url

from tradebot import __version__
from tradebot.config import Config
from tradebot.config.probe import probe

log = structlog.get_logger("tradebot.cli")

CONFIG_WARNINGS = Counter("tradebot_config_warnings_total",
                          "Risky settings the daemon started with (server_not_loopback)",
                          ["warning"])


def run(config: Config) -> int:
    """Load the venues' instruments, then run the daemon until SIGTERM; return the status."""
    from tradebot.app import live_app
    from tradebot.feeds.instruments import live_instruments
    from tradebot.systemd import Notifier

    # What check-config reports: an unresolvable host or a missing driver is ConfigError
    # (exit 78) here, before the store opens; a risky setting is a warning and runs on.
    warnings = probe(config)
    notifier = Notifier()
    log.info("service_starting", version=__version__, config=config.source,
             database=redact(config.database_url()))
    for warning in warnings:
        CONFIG_WARNINGS.labels(warning.event).inc()
        log.warning(warning.event, key=warning.key, warning=warning.message)

    async def main() -> int:
        instruments = await live_instruments(config)
        return await live_app(config, notifier, instruments).run_live()

    return uvloop.run(main())


def redact(url: str) -> str:
    """Return a database URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
