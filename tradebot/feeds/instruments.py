"""Which instruments a run has: one answer for live runs, replays and `serve-recording`.

Instruments come from the venues' own lists (fetched over REST at start, or carried by a
recording) and from the config's [[instruments]], which override them. The result is one
`RunInstruments`: what each venue's feed follows, and every instrument the run knows (risk, the
paper venue and the strategies read the latter). Nothing here changes a recording.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
import structlog
from prometheus_client import Counter

from tradebot.config import Config, FeedConfig
from tradebot.domain import Instrument, InstrumentId
from tradebot.errors import ConfigError, DataError
from tradebot.feeds.recorded import recorded_instruments
from tradebot.feeds.registry import venue_spec
from tradebot.feeds.replay import Recording

log = structlog.get_logger(__name__)

INSTRUMENT_FETCH_ERRORS = Counter(
    "tradebot_instrument_fetch_errors_total",
    "Venue instrument lists that could not be fetched at start (the config is used)", ["venue"],
)

# Called with each instrument list fetched (its URL and body) before it is parsed.
OnList = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class RunInstruments:
    """The instruments of one run."""

    # Per venue, the instruments its feed subscribes, in subscription order.
    feeds: Mapping[str, tuple[Instrument, ...]]
    # Every instrument the run knows: venue lists first, [[instruments]] overriding them.
    instruments: Mapping[InstrumentId, Instrument]


def resolve(config: Config, listed: Mapping[InstrumentId, Instrument] | None = None,
            feeds: Mapping[str, Sequence[Instrument]] | None = None) -> RunInstruments:
    """Merge venue-listed instruments with [[instruments]] (which win) into a RunInstruments.

    `feeds` names what each feed follows; by default the configured feeds' symbols, looked up
    in the merged instruments.
    """
    known = {**(listed or {}), **config.instrument_map()}
    if feeds is None:
        feeds = {f.venue: [known[InstrumentId(s, f.venue)] for s in f.symbols]
                 for f in config.feeds}
    for insts in feeds.values():
        # What a feed follows, every component knows (risk, venue, strategies).
        for inst in insts:
            known.setdefault(inst.id, inst)
    return RunInstruments(feeds={venue: tuple(insts) for venue, insts in feeds.items()},
                          instruments=known)


async def fetch_listed(session: aiohttp.ClientSession, config: FeedConfig,
                       on_list: OnList | None = None) -> dict[InstrumentId, Instrument]:
    """Fetch a venue's instrument lists; return the instruments of the feed's symbols.

    Raise what the request or the parser raises (aiohttp.ClientError, TimeoutError, OSError,
    DataError); the caller decides whether that is fatal.
    """
    spec = venue_spec(config.venue)
    found: dict[InstrumentId, Instrument] = {}
    for url in spec.instrument_urls(config):
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=15)) as resp:
            resp.raise_for_status()
            body = await resp.read()
        if on_list is not None:
            on_list(url, body)
        found.update((i.id, i) for i in spec.parse_instruments(body)
                     if i.id.symbol in config.symbols)
    return found


async def live_instruments(
        config: Config,
        fetch: Callable[[aiohttp.ClientSession, FeedConfig],
                        Awaitable[dict[InstrumentId, Instrument]]] = fetch_listed,
) -> RunInstruments:
    """Return a live run's instruments, fetching the lists of feeds with `instruments_from_venue`.

    A venue that cannot be reached is logged and counted, and its feed falls back to the
    config's [[instruments]]; a symbol found in neither is a config error (exit 78).
    """
    found: dict[InstrumentId, Instrument] = {}
    feeds = [f for f in config.feeds if f.instruments_from_venue]
    if not feeds:
        return resolve(config, found)
    async with aiohttp.ClientSession() as session:
        for cfg in feeds:
            try:
                found.update(await fetch(session, cfg))
            except (aiohttp.ClientError, TimeoutError, OSError, DataError) as exc:
                INSTRUMENT_FETCH_ERRORS.labels(cfg.venue).inc()
                log.warning("instruments_fetch_failed", venue=cfg.venue, error=repr(exc))
    known = set(found) | set(config.instrument_map())
    for i, cfg in enumerate(config.feeds):
        missing = [s for s in cfg.symbols if InstrumentId(s, cfg.venue) not in known]
        if missing:
            raise ConfigError(f"{', '.join(missing)} on {cfg.venue}: not in the venue's "
                              "instrument list nor in [[instruments]]",
                              key=f"feeds[{i}].symbols", source=config.source)
    log.info("instruments_loaded", count=len(found))
    return resolve(config, found)


def replay_instruments(config: Config, recordings: Sequence[Recording]) -> RunInstruments:
    """Return the instruments the recordings' books need, by venue.

    [[instruments]] come first, else the recording's own instrument list; a recording with no
    list in or beside it follows the configured instruments its client subscribed. A symbol
    found in neither is a config error.
    """
    configured = config.instrument_map()
    by_symbol = {(i.id.venue, i.venue_symbol): i for i in configured.values()}
    feeds: dict[str, list[Instrument]] = {}
    listed: dict[InstrumentId, Instrument] = {}  # from a recording's own list, not the config
    for rec in recordings:
        own = {i.venue_symbol: i for i in rec.instruments}
        for sym in _followed_symbols(config, rec):
            inst = by_symbol.get((rec.venue, sym)) or own.get(sym)
            if inst is None:
                raise ConfigError(f"{rec.path}: {sym} on {rec.venue} has no [[instruments]] entry",
                                  key="instruments", source=config.source)
            if inst.id not in configured:
                listed[inst.id] = inst
            if inst not in feeds.setdefault(rec.venue, []):
                feeds[rec.venue].append(inst)
    return resolve(config, listed, feeds)


def _followed_symbols(config: Config, rec: Recording) -> list[str]:
    if rec.framing == "hftbacktest" or rec.depth_symbols:
        return rec.depth_symbols
    # No instrument list in or beside the recording: match the configured ones.
    configured = [i for i in config.instrument_map().values() if i.id.venue == rec.venue]
    symbols = [i.venue_symbol for i in recorded_instruments(rec.venue, rec.subscribed,
                                                            configured)]
    if not symbols:
        raise DataError(f"{rec.path}: none of its subscriptions is in [[instruments]] "
                        f"for {rec.venue}")
    return symbols
