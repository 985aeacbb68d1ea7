"""One process per state: an exclusive lock on the state, held for the process's life.

Two daemons on one SQLite file would both trade, the second failing every write on a duplicate
fill id while its portfolio drifts from the store; started at once, one dies in migration. The
lock is an `flock` on `<database>.lock` beside the database, taken before migration and before
anything is written, without waiting: the second process gets `StateLocked` and exits. The
kernel releases the lock when its holder exits in any way (SIGKILL and crashes included), so a
lock is never stale; the file itself stays, holding the last holder's pid for the message.

Only SQLite files are locked. A PostgreSQL database is not (see README: one daemon per
database account is the operator's rule there until an advisory lock is tested).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import structlog
from prometheus_client import Counter
from sqlalchemy.engine import make_url

from tradebot.errors import ConfigError, StateLocked

log = structlog.get_logger(__name__)

STATE_LOCK_REFUSED = Counter("tradebot_state_lock_refused_total",
                             "Starts refused because another process held the state")


class StateLock:
    """The held lock of one state (none for in-memory or non-SQLite databases)."""

    def __init__(self, path: Path | None, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @property
    def held(self) -> bool:
        """Return whether this process holds a lock file."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent); the file stays for the next holder."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None


def lock_path(url: str) -> Path | None:
    """Return the lock file of a database URL: `<file>.lock` for SQLite, else None."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    db = Path(database)
    return db.with_name(db.name + ".lock")


def acquire(url: str) -> StateLock:
    """Take the state's lock without waiting; raise StateLocked when another process holds it."""
    path = lock_path(url)
    if path is None:
        return StateLock(None, None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open the state lock {path}: {exc.strerror}",
                          key="state") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        STATE_LOCK_REFUSED.inc()
        raise StateLocked(str(path), holder) from None
    # Record who holds it, for the refusal message of the next one.
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    log.info("state_lock_taken", path=str(path), pid=os.getpid())
    return StateLock(path, fd)


def _holder(fd: int) -> str:
    # Empty while the holder is between taking the lock and writing its pid.
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
