"""Whole-pipeline figures of the foundation (DESIGN.md performance budget):

- replay throughput of parse -> book -> features -> strategy -> risk -> paper venue on the
  USD-M BTCUSDT recording, beside decoding the same frames with orjson / json alone;
- tick-to-decision latency inside the process (frame in -> everything it caused done), p50/p99;
- startup to READY=1 with a warm numba cache, beside a bare `python -c pass`;
- resident memory of the running daemon (no torch model loaded).

Run: `python -m benchmarks pipeline` (or `python -m benchmarks.bench_pipeline`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADEBOT_DATA_DIR", REPO.parent / "shared" / "data"))
RECORDING = DATA / "binance_hftbacktest" / "usdm" / "btcusdt_20240808.gz"
REPEATS = 5


def replay_once(timed: bool) -> tuple[dict[str, object], np.ndarray]:
    """Replay the recording; with `timed`, time each frame's handling (tick-to-decision).

    Throughput comes from untimed runs: the timer around every frame costs about 0.4 µs.
    """
    import dataclasses

    from tradebot.app import App
    from tradebot.clock import SimClock
    from tradebot.config import StateConfig, load_config
    from tradebot.feeds.instruments import resolve
    from tradebot.feeds.replay import inspect

    config = load_config(environ={})
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(config, state=StateConfig(
            database_url=f"sqlite:///{tmp}/bench.sqlite3"))
        rec = inspect(RECORDING)
        inst = [i for i in config.instrument_map().values()
                if i.id.venue == rec.venue and i.venue_symbol in rec.depth_symbols]
        app = App(config, SimClock(), instruments=resolve(config, feeds={rec.venue: inst}))
        feed = app.feeds[rec.venue]
        timings: list[int] = []
        handle = feed.handle

        def timed_handle(frame: bytes, ts_init: int) -> None:
            started = time.perf_counter_ns()
            handle(frame, ts_init)
            timings.append(time.perf_counter_ns() - started)

        if timed:
            feed.handle = timed_handle  # type: ignore[method-assign]
        summary = asyncio.run(app.run_replay([rec], progress=False))
    return summary, np.array(timings)


def decode_baseline(loads) -> float:  # type: ignore[no-untyped-def]
    from tradebot.feeds.replay import read_lines

    started = time.perf_counter()
    n = 0
    for _, payload in read_lines(RECORDING):
        loads(payload)
        n += 1
    return n / (time.perf_counter() - started)


async def startup_once(tmp: Path) -> tuple[float, int]:
    sys.path.insert(0, str(REPO))
    from tests.integration.fake_binance import FakeBinance, Script
    from tests.integration.test_service import write_config

    fake = FakeBinance(RECORDING, 20_000, Script(frames_per_second=1000))
    await fake.start()
    notify = tmp / f"n{time.perf_counter_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    cfg = write_config(tmp, fake)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebot", "--config", str(cfg), "run", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    loop = asyncio.get_running_loop()
    while b"READY=1" not in await asyncio.wait_for(loop.sock_recv(sock, 4096), 120):
        pass
    ready_s = time.perf_counter() - started
    await asyncio.sleep(3)  # streaming for a while
    rss_kb = rss_of(proc.pid)
    proc.send_signal(signal.SIGTERM)
    await proc.wait()
    sock.close()
    await fake.stop()
    return ready_s, rss_kb


def rss_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))


def bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


MEMORY_STEPS = """
import json
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
steps = [("python", rss())]
import numpy
steps.append(("+ numpy", rss()))
import numba
steps.append(("+ numba", rss()))
import aiohttp, sqlalchemy, structlog, prometheus_client, orjson, uvloop
steps.append(("+ aiohttp, sqlalchemy, structlog, ...", rss()))
import tradebot.app
steps.append(("+ tradebot modules", rss()))
from tradebot.core import book
book.warmup()
steps.append(("+ the first kernel (numba's LLVM JIT)", rss()))
from tradebot.core.warmup import warmup_daemon
warmup_daemon()
steps.append(("+ every daemon kernel", rss()))
print(json.dumps(steps))
"""


def memory_steps() -> list[tuple[str, int]]:
    """Return the resident MB after each import step of the daemon (where the memory goes)."""
    out = subprocess.run([sys.executable, "-c", MEMORY_STEPS], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return [(name, int(mb)) for name, mb in json.loads(out.strip().splitlines()[-1])]


def main() -> None:
    from tradebot.log import setup_logging

    setup_logging("warning", "console", sys.stderr)
    if not RECORDING.exists():
        print(f"skipped: {RECORDING} not found (set TRADEBOT_DATA_DIR)")
        return
    replay_once(False)  # warm the numba cache and the page cache
    rates, p50s, p99s = [], [], []
    for _ in range(REPEATS):
        summary, _ = replay_once(False)
        rates.append(summary["messages_per_second"])
        _, t = replay_once(True)
        p50s.append(np.percentile(t, 50) / 1e3)
        p99s.append(np.percentile(t, 99) / 1e3)
    orjson_rate = statistics.median(decode_baseline(orjson.loads) for _ in range(3))
    json_rate = statistics.median(decode_baseline(json.loads) for _ in range(3))
    rate = statistics.median(rates)
    print(f"recording: {RECORDING.name} ({summary['messages']} messages, {summary['fills']} fills)")
    print(f"replay throughput, whole pipeline : {rate:>10,.0f} msg/s  (budget >= 100,000)")
    print(f"  peer: orjson.loads only         : {orjson_rate:>10,.0f} msg/s  "
          f"(pipeline / orjson = {rate / orjson_rate:.2f})")
    print(f"  peer: json.loads only           : {json_rate:>10,.0f} msg/s  "
          f"(pipeline / json = {rate / json_rate:.2f})")
    print(f"tick-to-decision p50 / p99        : {statistics.median(p50s):.1f} / "
          f"{statistics.median(p99s):.1f} µs  (budget p99 <= 50 µs)")
    with tempfile.TemporaryDirectory() as tmp:
        results = [asyncio.run(startup_once(Path(tmp))) for _ in range(REPEATS)]
    ready = statistics.median(r[0] for r in results)
    rss = statistics.median(r[1] for r in results) / 1024
    bare = statistics.median(bare_python() for _ in range(REPEATS))
    print(f"startup to READY=1 (warm cache)   : {ready:.2f} s  (budget <= 2 s; "
          f"bare python -c pass {bare:.2f} s, ratio {ready / bare:.1f}x)")
    print(f"resident memory while streaming   : {rss:.0f} MB  (budget <= 150 MB)")
    print("  where it goes (resident MB after each step, one process):")
    for name, mb in memory_steps():
        print(f"    {name:<40}{mb:>5}")
    print(f"(medians of {REPEATS} runs)")


if __name__ == "__main__":
    main()
