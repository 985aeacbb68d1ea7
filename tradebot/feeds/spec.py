"""What a venue is, declared once: endpoints, limits, instrument lists, book rules.

Each venue module declares one `VenueSpec` per venue it serves (`SPECS`); `Feed` reads it, so a
venue module keeps only its pure parsers, its spec and the few hooks where it truly differs
(KuCoin's connect token, Kraken's v1/v2 protocols, checksums). Replay-only facts (which
recorded URLs are instrument lists, what a recording subscribed) live in `feeds/recorded.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tradebot.config import FeedConfig
from tradebot.domain import Instrument
from tradebot.errors import DataError
from tradebot.events import BookSnapshot
from tradebot.feeds.sync import SequenceRule

# (REST base URL, instrument, configured snapshot depth) -> the URL of a REST depth snapshot.
SnapshotUrl = Callable[[str, Instrument, int], str]
SnapshotParser = Callable[[bytes, Instrument, int], BookSnapshot]
InstrumentParser = Callable[[bytes, str], list[Instrument]]


@dataclass(frozen=True, slots=True, kw_only=True)
class VenueSpec:
    """One venue's public market data, declared (the config may override the URLs)."""

    venue: str
    ws_url: str  # the public websocket endpoint
    rest_url: str  # the REST base of instrument lists and depth snapshots
    channels: tuple[str, ...]  # what a feed subscribes per instrument (documentation, tests)
    sequence_rule: Callable[[], SequenceRule]  # a fresh rule per feed
    # Instrument lists: paths under the REST base (one per market type), and their parser.
    instrument_paths: tuple[str, ...] = ()
    instrument_parser: InstrumentParser | None = None
    # False where the lists live on a host of their own that the configured REST URL does
    # not replace (Coinbase's public product lists).
    instruments_follow_rest_url: bool = True
    # Instruments per websocket connection (0: one connection carries them all).
    max_instruments_per_connection: int = 0
    # An application-level ping and its interval, where the venue wants one.
    keepalive: tuple[str, float] | None = None
    # A synced book that hears nothing for this long is invalid (0: only the connection's
    # stale deadline applies). Venues that heartbeat each book channel set it.
    book_stale_after_s: float = 0.0
    # True where subscribing makes the venue send each book's snapshot itself, so a new
    # connection needs no snapshot request.
    snapshot_on_subscribe: bool = False
    # A REST depth snapshot that bridges the stream (None: books resync by resubscribing).
    snapshot_url: SnapshotUrl | None = None
    snapshot_parser: SnapshotParser | None = None

    def instrument_urls(self, config: FeedConfig) -> list[str]:
        """Return every URL of the venue's instrument lists ([] when it publishes none)."""
        base = self.rest_url
        if self.instruments_follow_rest_url and config.rest_url:
            base = config.rest_url
        return [base + path for path in self.instrument_paths]

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """Parse one of the venue's instrument lists into Instruments with normalized symbols."""
        if self.instrument_parser is None:
            raise DataError(f"{self.venue} has no instrument list parser")
        return self.instrument_parser(body, self.venue)
