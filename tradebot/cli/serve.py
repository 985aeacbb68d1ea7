"""`tradebot serve-recording`: a recording served on 127.0.0.1 in the venue's own protocol."""

from __future__ import annotations

import argparse

import uvloop

from tradebot.cli.exits import EX_OK
from tradebot.cli.signals import until_signal
from tradebot.config import Config


def serve(config: Config, args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM."""
    from tradebot.feeds.instruments import replay_instruments
    from tradebot.feeds.replay import inspect
    from tradebot.feeds.replay_server import serve_recording

    recording = inspect(args.file, args.venue)
    # The books it serves: those the replay would follow ([[instruments]] for a file that
    # carries no instrument list, like the hftbacktest captures).
    served = list(replay_instruments(config, [recording]).feeds[recording.venue])

    async def main() -> int:
        stop = await until_signal()
        await serve_recording(recording, served, "127.0.0.1",
                              args.ws_port, args.http_port, args.speed, args.fps, stop)
        return EX_OK

    return uvloop.run(main())
