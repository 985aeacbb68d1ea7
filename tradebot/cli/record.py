"""`tradebot record`: a venue's raw frames and REST snapshots to gzip files."""

from __future__ import annotations

import argparse
import dataclasses

import uvloop

from tradebot.cli.exits import EX_OK
from tradebot.cli.signals import until_signal
from tradebot.config import Config, FeedConfig


def record(config: Config, args: argparse.Namespace) -> int:
    """Record until SIGINT/SIGTERM or `--duration`; print what was written."""
    from tradebot.clock import LiveClock
    from tradebot.feeds.recorder import record as record_feed

    base = next((f for f in config.feeds if f.venue == args.venue), FeedConfig(venue=args.venue))
    feed = dataclasses.replace(base, symbols=list(args.symbols),
                               ws_url=args.ws_url or base.ws_url,
                               rest_url=args.rest_url or base.rest_url)

    async def main() -> int:
        stop = await until_signal(args.duration)
        writer = await record_feed(feed, args.out, LiveClock(), stop, config.instrument_map())
        print(f"recorded {writer.lines} lines: {' '.join(str(f) for f in writer.files)}")
        return EX_OK

    return uvloop.run(main())
