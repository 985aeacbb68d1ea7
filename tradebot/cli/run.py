"""`tradebot run`: the daemon on live feeds."""

from __future__ import annotations

import structlog
import uvloop
from sqlalchemy.engine import make_url

from tradebot import __version__
from tradebot.config import Config

log = structlog.get_logger("tradebot.cli")


def run(config: Config) -> int:
    """Load the venues' instruments, then run the daemon until SIGTERM; return the status."""
    from tradebot.app import live_app
    from tradebot.feeds.instruments import live_instruments
    from tradebot.systemd import Notifier

    notifier = Notifier()
    log.info("service_starting", version=__version__, config=config.source,
             database=redact(config.database_url()))

    async def main() -> int:
        instruments = await live_instruments(config)
        return await live_app(config, notifier, instruments).run_live()

    return uvloop.run(main())


def redact(url: str) -> str:
    """Return a database URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)
