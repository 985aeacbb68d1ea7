"""Serve a recording over a real websocket and HTTP on 127.0.0.1, in the venue's own protocol.

The server plays the recording on one shared timeline, as a venue would: clients that connect
late or reconnect miss what passed meanwhile. A mirror of the venue's own Feed follows the
timeline, so the server always knows each book; a (re)subscription gets a snapshot rendered
from the mirror in the venue's format, and the REST depth endpoint serves one. The daemon's
live code path (FeedRunner, the venue Feed) therefore runs end to end offline, and its books at
the end of the recording equal a clean replay's. Faults for tests: `drop_connections()` cuts
every connection mid-stream; `silent` stops all traffic (frames, acks and pongs).

A venue's server side is a `VenueProtocol`: greetings, acks, pongs, which subscription a frame
belongs to, snapshot rendering and the REST endpoints it answers from the mirror. Here: Kraken
(v1, the recorded protocol), OKX v5, Binance (spot, USD-M, COIN-M combined streams), Bybit v5,
KuCoin (bullet-public, welcome, level2 REST) and Coinbase (Advanced Trade and Exchange).

The core (server, client, base protocol, shared rendering) is `server`; each venue's protocol
is a module of its own here, as each venue's feed is, and adds its venues to `PROTOCOLS`.
"""

# Importing a venue module registers its protocol.
from tradebot.feeds.replay_server.binance import BinanceProtocol, exchange_info
from tradebot.feeds.replay_server.bybit import BybitProtocol
from tradebot.feeds.replay_server.coinbase import CoinbaseProtocol
from tradebot.feeds.replay_server.kraken import KrakenV1Protocol
from tradebot.feeds.replay_server.kucoin import KucoinProtocol
from tradebot.feeds.replay_server.okx import OkxProtocol
from tradebot.feeds.replay_server.server import (
    CLIENT_QUEUE,
    PROTOCOLS,
    BaseProtocol,
    Client,
    NotReady,
    ReplayServer,
    VenueProtocol,
    canonical,
    fixed,
    rfc3339,
    serve_recording,
)

__all__ = [
    "CLIENT_QUEUE",
    "PROTOCOLS",
    "BaseProtocol",
    "BinanceProtocol",
    "BybitProtocol",
    "Client",
    "CoinbaseProtocol",
    "KrakenV1Protocol",
    "KucoinProtocol",
    "NotReady",
    "OkxProtocol",
    "ReplayServer",
    "VenueProtocol",
    "canonical",
    "exchange_info",
    "fixed",
    "rfc3339",
    "serve_recording",
]
