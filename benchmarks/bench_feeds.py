"""Per-venue feed figures: decode + book apply (+ checksum) per recorded book message.

For each venue's recording, in one run:
- tradebot: `Feed.on_frame` on every frame of the session (parse, integer book kernel,
  checksum kernel, publish); per-message time of the book messages (median, p99) and
  throughput of the whole session;
- cryptofeed (where installed): its own `message_handler` on the same frames (json with
  Decimal, its order book, checksum validation on);
- order-book (the C extension, where installed): applying the same, pre-decoded updates and
  computing its checksum; no decoding, so a lower bound for a Python-side parser.
Ratios are peer time / tradebot time (above 1: tradebot is faster). Every figure is the
median of REPEATS passes. Run: `python -m benchmarks feeds`.

Other venues add themselves to VENUES: (venue, recording, cryptofeed class name, checksum
format of order-book or None, a function extracting order-book updates from one frame). Binance
(USD-M hftbacktest capture), Bybit v5 (its own dump), KuCoin (level2 bridged to the recorded
REST snapshots) and Coinbase (the Exchange session) have tradebot figures only so far; their
recorded REST snapshots reach the feed untimed, as in a replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADEBOT_DATA_DIR", REPO.parent / "shared" / "data"))
REPEATS = 5

Update = tuple[str, list[tuple[str, Decimal, Decimal]]]  # (book key, [(side, price, size)])


def kraken_updates(frame: bytes) -> Update | None:
    msg = json.loads(frame, parse_float=Decimal)
    if not isinstance(msg, list) or not str(msg[-2]).startswith("book"):
        return None
    out = []
    for part in msg[1:-2]:
        for key, levels in part.items():
            if key in ("a", "as", "b", "bs"):
                side = "ask" if key.startswith("a") else "bid"
                out += [(side, Decimal(lv[0]), Decimal(lv[1])) for lv in levels]
    return msg[-1], out


def okx_updates(frame: bytes) -> Update | None:
    if not frame.startswith(b'{"arg":{"channel":"books"'):
        return None
    msg = json.loads(frame)
    out = []
    for data in msg["data"]:
        for key, side in (("bids", "bid"), ("asks", "ask")):
            out += [(side, Decimal(lv[0]), Decimal(lv[1])) for lv in data[key]]
    return msg["arg"]["instId"], out


@dataclass(frozen=True)
class Venue:
    venue: str
    recording: str
    cryptofeed: str | None
    checksum_format: str | None
    updates: Callable[[bytes], Update | None] | None
    is_book: Callable[[bytes], bool]
    skip: tuple[str, ...] = ()  # symbols the recording cannot sync (no usable snapshot)


VENUES = [
    Venue("kraken", "cryptofeed/KRAKEN.ws.50.0", "Kraken", "KRAKEN", kraken_updates,
          lambda f: f.startswith(b"[") and b'"book-' in f[-40:]),
    Venue("okx", "cryptofeed/OKX.ws.1.0", "OKX", "OKX", okx_updates,
          lambda f: f.startswith(b'{"arg":{"channel":"books"')),
    Venue("binance_usdm", "binance_hftbacktest/usdm/btcusdt_20240808.gz", None, None, None,
          lambda f: f.startswith(b'{"stream":"btcusdt@depth')),
    Venue("bybit_linear", "bybit_v5/xrpusdt-ob500.data.zip", None, None, None,
          lambda f: f.startswith(b'{"topic":"orderbook.')),
    Venue("kucoin", "cryptofeed/KUCOIN.ws.1.0", None, None, None,
          lambda f: b'"subject":"trade.l2update"' in f, skip=("BSV-USDT", "LTX-USDT")),
    Venue("coinbase_exchange", "cryptofeed/COINBASE.ws.28.0", None, None, None,
          lambda f: f.startswith(b'{"type":"l2update"')),
]

Entry = tuple[int, str, str, bytes]  # (ts ns, "frame" | "rest", url, payload)


def _bybit_linear_xrp() -> Any:
    from tradebot.domain import Instrument, InstrumentId, MarketKind

    # XRPUSDT as Bybit's instruments-info lists it (tick 0.0001, step 1).
    return Instrument(id=InstrumentId("XRP-USDT-PERP", "bybit_linear"), venue_symbol="XRPUSDT",
                      kind=MarketKind.LINEAR_PERP, base="XRP", quote="USDT",
                      tick_size=Decimal("0.0001"), lot_size=Decimal(1),
                      min_notional=Decimal(5))


def frames_of(v: Venue) -> tuple[list[Any], list[Entry]]:
    """Return a recording's instruments and its frames and REST snapshots in time order."""
    import zipfile

    from tradebot.config import load_config
    from tradebot.feeds.replay import inspect, read_entries, read_lines

    path = DATA / v.recording
    if path.suffix == ".zip":  # Bybit's dump: one v5 message per line, times in `ts` (ms)
        with zipfile.ZipFile(path) as archive:
            lines = archive.read(archive.namelist()[0]).splitlines()
        return [_bybit_linear_xrp()], [(json.loads(f)["ts"] * 1_000_000, "frame", "", f)
                                       for f in lines]
    rec = inspect(path, v.venue)
    if rec.framing == "hftbacktest":
        configured = load_config(environ={}).instrument_map().values()
        insts = [i for i in configured
                 if i.id.venue == v.venue and i.venue_symbol in rec.depth_symbols]
        return insts, [(ts, "rest" if f.startswith(b'{"lastUpdateId"') else "frame", "", f)
                       for ts, f in read_lines(path)]
    insts = [i for i in rec.instruments if i.id.symbol not in v.skip]
    return insts, [(e.ts, e.kind, e.url, e.payload) for e in read_entries(rec.path, rec.framing)
                   if e.kind in ("frame", "rest")]


def _rest(feed: Any, url: str, body: bytes, ts: int) -> None:
    # A recorded REST snapshot (untimed): to its instrument's book, as a replay does.
    from tradebot.feeds.recorded import is_instrument_list, snapshot_instrument

    if url and is_instrument_list(feed.venue, url):
        return
    inst = snapshot_instrument(url, feed.instruments.values()) if url else \
        next(iter(feed.instruments.values()))
    if inst is not None:
        feed.on_snapshot(feed.parse_snapshot(body, inst, ts))


def run_tradebot(v: Venue) -> dict[str, float]:
    from tradebot.bus import Bus
    from tradebot.clock import SimClock
    from tradebot.core.warmup import warmup_all
    from tradebot.feeds.registry import build_feed

    warmup_all()
    instruments, entries = frames_of(v)
    frames = sum(kind == "frame" for _, kind, _, _ in entries)
    per_msg: list[int] = []
    rates = []
    for _ in range(REPEATS):
        feed = build_feed(v.venue, instruments, Bus(), SimClock())
        feed.reset_books("connect")
        elapsed = 0
        for ts, kind, url, payload in entries:
            if kind == "rest":
                _rest(feed, url, payload, ts)
                continue
            started = time.perf_counter_ns()
            feed.on_frame(payload, ts)
            elapsed += time.perf_counter_ns() - started
        rates.append(frames / (elapsed / 1e9))
        assert sum(b.checksums_failed for b in feed.books.values()) == 0
        assert all(b.valid for b in feed.books.values()), f"{v.venue}: a book never synced"
    feed = build_feed(v.venue, instruments, Bus(), SimClock())
    for _ in range(REPEATS):
        feed.reset_books("connect")
        for ts, kind, url, payload in entries:
            if kind == "rest":
                _rest(feed, url, payload, ts)
                continue
            t0 = time.perf_counter_ns()
            feed.on_frame(payload, ts)
            if v.is_book(payload):
                per_msg.append(time.perf_counter_ns() - t0)
    per_msg.sort()
    return {"book_msgs": len(per_msg) // REPEATS, "median_us": statistics.median(per_msg) / 1e3,
            "p99_us": per_msg[int(len(per_msg) * 0.99)] / 1e3,
            "session_msgs_per_s": statistics.median(rates)}


def _cryptofeed_class(v: Venue) -> Any:
    import cryptofeed.exchanges as exchanges

    cls = getattr(exchanges, v.cryptofeed or "")
    name = Path(v.recording).name.split(".")[0]
    bodies = {}
    for line in (DATA / "cryptofeed" / f"{name}.0").read_text().splitlines():
        url, sep, rest = line.partition(" -> ")
        if sep:
            bodies[url] = json.loads(rest.partition(": ")[2])

    def read(addr: str, **_kw: Any) -> Any:  # the recorded instrument lists, no network
        return bodies.get(addr, {"code": "0", "data": []})

    cls.http_sync.read = read
    return cls


def _std_symbol(cls: Any, inst: Any) -> str:
    from tradebot.feeds.kraken import v1_pair

    by_exchange = {exch: std for std, exch in cls.symbol_mapping().items()}
    for name in (inst.venue_symbol, v1_pair(inst) if "/" in inst.venue_symbol else ""):
        if name in by_exchange:
            return str(by_exchange[name])
    return str(inst.id.symbol)


def run_cryptofeed(v: Venue) -> dict[str, float] | None:
    if v.cryptofeed is None:
        return None
    try:
        from cryptofeed.defines import L2_BOOK
    except ImportError:
        return None
    cls = _cryptofeed_class(v)
    instruments, entries = frames_of(v)
    frames = [(ts, f) for ts, kind, _, f in entries if kind == "frame"]
    std = [_std_symbol(cls, i) for i in instruments]
    per_msg: list[int] = []

    async def one_pass() -> None:
        feed = cls(symbols=std, channels=[L2_BOOK], checksum_validation=True)
        for ts, frame in frames:
            text = frame.decode()
            t0 = time.perf_counter_ns()
            await feed.message_handler(text, None, ts / 1e9)
            if v.is_book(frame):
                per_msg.append(time.perf_counter_ns() - t0)

    for _ in range(REPEATS):
        asyncio.run(one_pass())
    per_msg.sort()
    return {"median_us": statistics.median(per_msg) / 1e3,
            "p99_us": per_msg[int(len(per_msg) * 0.99)] / 1e3}


def run_order_book(v: Venue) -> dict[str, float] | None:
    extract = v.updates
    if extract is None:
        return None
    try:
        from order_book import OrderBook
    except ImportError:
        return None
    _, entries = frames_of(v)
    updates = [u for _, kind, _, f in entries
               if kind == "frame" and v.is_book(f) and (u := extract(f)) is not None]
    per_msg: list[int] = []
    for _ in range(REPEATS):
        books: dict[str, Any] = {}
        for key, levels in updates:
            book = books.get(key)
            if book is None:
                book = books[key] = OrderBook(checksum_format=v.checksum_format)
            t0 = time.perf_counter_ns()
            for side, price, size in levels:
                half = book.bids if side == "bid" else book.asks
                if size == 0:
                    if price in half:
                        del half[price]
                else:
                    half[price] = size
            if v.checksum_format:
                book.checksum()
            per_msg.append(time.perf_counter_ns() - t0)
    per_msg.sort()
    return {"median_us": statistics.median(per_msg) / 1e3,
            "p99_us": per_msg[int(len(per_msg) * 0.99)] / 1e3}


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("cryptofeed", "order-book"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} not installed")
    return ", ".join(out)


def main() -> int:
    from tradebot.log import setup_logging

    # Figures on stdout; no per-book lines, nor the warnings a recording's unfollowed symbols
    # cause (KuCoin's BCHSV-USDT ticker): the tests cover those.
    setup_logging("error", "console", sys.stderr)
    print(f"python {sys.version.split()[0]}; peers: {versions()}; median of {REPEATS} passes")
    header = (f"{'venue':<18}{'book msgs':>10}{'tradebot µs':>13}{'p99':>8}{'msgs/s':>11}"
              f"{'cryptofeed µs':>15}{'ratio':>7}{'order-book µs':>15}{'ratio':>7}")
    print(header)
    for v in VENUES:
        ours = run_tradebot(v)
        cf = run_cryptofeed(v)
        ob = run_order_book(v)
        cf_txt = f"{cf['median_us']:>15.2f}{cf['median_us'] / ours['median_us']:>7.1f}" if cf \
            else f"{'-':>15}{'-':>7}"
        ob_txt = f"{ob['median_us']:>15.2f}{ob['median_us'] / ours['median_us']:>7.1f}" if ob \
            else f"{'-':>15}{'-':>7}"
        print(f"{v.venue:<18}{ours['book_msgs']:>10}{ours['median_us']:>13.2f}"
              f"{ours['p99_us']:>8.1f}{ours['session_msgs_per_s']:>11,.0f}{cf_txt}{ob_txt}")
    print("tradebot/cryptofeed: decode + apply + checksum of one book message; order-book: "
          "apply + checksum of pre-decoded levels (no decode); msgs/s: whole session.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
