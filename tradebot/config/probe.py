"""Checks of a loaded config against this machine: what `run` would otherwise fail on later.

The loader checks the keys themselves; these look outside the file: the server host resolves,
the database URL names a dialect whose driver is installed. A bad one raises `ConfigError`
naming the key (exit 78), so `check-config` catches what `run` would fail on. What works but
deserves a word (the API bound beyond loopback, with no authentication) comes back as a
`ConfigWarning` for the caller to print or log.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from tradebot.config.schema import Config, ServerConfig
from tradebot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A setting that works but is risky: `event` is the log event name, `key` the config key."""

    event: str
    key: str
    message: str


def probe(config: Config) -> list[ConfigWarning]:
    """Check the database driver and the server host; return the warnings, raise ConfigError."""
    probe_database(config.database_url(), "state.database_url", config.source)
    if not config.server.enabled:
        return []
    return probe_server(config.server, config.source)


def probe_database(url: str, key: str, source: str = "") -> None:
    """Raise ConfigError naming `key` unless `url` parses and its dialect and driver load."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise ConfigError(f"not a database URL ({exc})", key=key, source=source) from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(f"unknown database dialect {parsed.drivername!r} "
                          "(sqlite or postgresql+psycopg, for example)",
                          key=key, source=source) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(f"database driver {parsed.get_driver_name()!r} for "
                          f"{parsed.get_backend_name()} is not installed ({exc}); install it "
                          "or use another URL", key=key, source=source) from None


def probe_server(server: ServerConfig, source: str = "") -> list[ConfigWarning]:
    """Resolve `server.host` (ConfigError when it does not); warn when it is not loopback."""
    # aiohttp binds every interface for an empty host, as getaddrinfo does for None.
    host = server.host or None
    try:
        infos = socket.getaddrinfo(host, server.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte, a label too long
        raise ConfigError(f"cannot resolve {server.host!r} ({exc})", key="server.host",
                          source=source) from None
    addresses = sorted({str(info[4][0]) for info in infos})
    exposed = [a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback]
    if not exposed:
        return []
    return [ConfigWarning(
        "server_not_loopback", "server.host",
        f"{server.host or '(empty)'} binds {', '.join(exposed)}; the HTTP API has no "
        f"authentication: anyone who can reach port {server.port} reads the portfolio, orders "
        "and fills (bind 127.0.0.1 and put a proxy with authentication in front)",
    )]
