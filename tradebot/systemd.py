"""sd_notify without a dependency: one datagram to $NOTIFY_SOCKET (a no-op without it)."""

from __future__ import annotations

import os
import socket

import structlog
from prometheus_client import Counter

log = structlog.get_logger(__name__)

NOTIFY_ERRORS = Counter("tradebot_systemd_notify_errors_total", "sd_notify datagrams not sent")
WATCHDOG_SKIPS = Counter(
    "tradebot_watchdog_skipped_total", "Watchdog pings withheld, by reason", ["reason"]
)


class Notifier:
    """Send READY, STATUS, WATCHDOG and STOPPING to the service manager."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        owned = not pid or pid == str(os.getpid())
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() and owned else 0.0
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """Return True when running under a service manager that listens."""
        return bool(self._address)

    def notify(self, **fields: str) -> bool:
        """Send `KEY=value` lines; return False when not sent."""
        if not self._address:
            return False
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            NOTIFY_ERRORS.inc()
            log.warning("systemd_notify_failed", error=str(exc))
            return False
        return True

    def ready(self, status: str) -> bool:
        """Tell the manager start-up is complete."""
        return self.notify(READY="1", STATUS=status)

    def extend_timeout(self, seconds: float, status: str) -> bool:
        """Ask for `seconds` more before the start (or stop) timeout fires (systemd >= 236)."""
        return self.notify(EXTEND_TIMEOUT_USEC=str(int(seconds * 1e6)), STATUS=status)

    def status(self, status: str) -> bool:
        """Update the one-line status shown by systemctl."""
        return self.notify(STATUS=status)

    def watchdog(self) -> bool:
        """Tell the manager the service is healthy."""
        return self.notify(WATCHDOG="1")

    def stopping(self, status: str = "stopping") -> bool:
        """Tell the manager shutdown has begun."""
        return self.notify(STOPPING="1", STATUS=status)

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
