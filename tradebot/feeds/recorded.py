"""What a recording says about its instruments, by venue: the replay side of a venue spec.

A live feed never asks these questions; replay, the replay server and the recorder do: which
recorded REST responses are instrument lists, which instruments the recorded client subscribed,
and which instrument a recorded REST snapshot URL asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit

from tradebot.domain import Instrument
from tradebot.feeds import binance, bybit, kraken
from tradebot.feeds.registry import venue_spec


def _path(url: str) -> str:
    return url.split("?")[0]


# Venues whose recorded lists also sit at other URLs than today's spec names (retired API
# versions, one path for every product type).
_LIST_URLS: dict[str, Callable[[str], bool]] = {
    "bybit": lambda url: "/v5/market/instruments-info" in url
    or url.endswith("/v2/public/symbols"),
    "kucoin": lambda url: _path(url).endswith(("/api/v1/symbols", "/api/v2/symbols")),
    "coinbase": lambda url: _path(url).endswith("/products"),
}
for _venue in ("bybit_linear", "bybit_inverse"):
    _LIST_URLS[_venue] = _LIST_URLS["bybit"]
_LIST_URLS["coinbase_exchange"] = _LIST_URLS["coinbase"]

# Venues whose client frames name symbols in a form of their own, and whether the names are
# compared upper-case; the others are matched on the tokens of the frames, upper-case.
_SUBSCRIBED: dict[str, tuple[Callable[[Sequence[bytes]], set[str]], bool]] = {
    **{venue: (binance.subscribed_symbols, True) for venue in binance.VENUES},
    **{venue: (bybit.subscribed_symbols, False) for venue in bybit.VENUES},
    **{venue: (kraken.subscribed_symbols, False) for venue in kraken.VENUES},
}


def is_instrument_list(venue: str, url: str) -> bool:
    """Return True when a recorded REST URL is one of the venue's instrument lists."""
    rule = _LIST_URLS.get(venue)
    if rule is not None:
        return rule(url)
    return any(_path(path) in url for path in venue_spec(venue).instrument_paths)


def _tokens(client_frames: Sequence[bytes]) -> set[str]:
    tokens: set[str] = set()
    for frame in client_frames:
        text = frame.decode(errors="replace").upper()
        for sep in '"{}[],:@ ':
            text = text.replace(sep, "\n")
        tokens.update(text.split())
    return tokens


def recorded_instruments(venue: str, client_frames: Sequence[bytes],
                         instruments: Iterable[Instrument]) -> list[Instrument]:
    """Return those of `instruments` that a recording's client frames (or URLs) subscribed."""
    reader, upper = _SUBSCRIBED.get(venue, (_tokens, True))
    symbols = reader(client_frames)
    if upper:
        return [i for i in instruments if i.venue_symbol.upper() in symbols]
    return [i for i in instruments if i.venue_symbol in symbols]


def snapshot_instrument(url: str, instruments: Iterable[Instrument]) -> Instrument | None:
    """Return the instrument a recorded REST snapshot URL asks for (None: not one of them)."""
    values = {v for _, v in parse_qsl(urlsplit(url).query)}
    for inst in instruments:
        if inst.venue_symbol in values:
            return inst
    return None
