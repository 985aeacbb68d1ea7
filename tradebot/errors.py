"""The three kinds of failure (STYLE.md rule 11) as exception types."""

from __future__ import annotations


class TradebotError(Exception):
    """Base class of every error tradebot raises on purpose."""


class ConfigError(TradebotError):
    """A bad configuration: names the key and the file; the process exits 78."""

    def __init__(self, message: str, *, key: str = "", source: str = "") -> None:
        self.key = key
        self.source = source
        where = f"{source}: " if source else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}")


class InvariantError(TradebotError):
    """A broken invariant (NaN price, overfill, illegal transition): log and exit non-zero."""


class DataError(TradebotError):
    """Input data that cannot be used (a malformed recording, an unknown message shape)."""


class TemporaryError(TradebotError):
    """A failure expected to pass (network, venue overload): retry with backoff."""


class StateLocked(TradebotError):
    """Another process holds the state's lock: this one must not start (exit 75)."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(f"the state at {path} is in use by {who}; stop it first "
                         f"(one daemon per state directory or database)")
