"""The daemon as systemd runs it: a subprocess, READY/WATCHDOG/STOPPING datagrams, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

from tests.conftest import data_file
from tests.integration.fake_binance import FakeBinance, Script, daemon_config
from tradebot.core.warmup import DAEMON_MODULES


def write_config(tmp_path: Path, fake: FakeBinance) -> Path:
    return daemon_config(tmp_path / "tradebot.toml", fake, tmp_path / "state", 0)


async def recv_until(sock: socket.socket, wanted: str, limit_s: float,
                     proc: asyncio.subprocess.Process) -> list[str]:
    loop = asyncio.get_running_loop()
    got: list[str] = []
    deadline = loop.time() + limit_s
    while not any(wanted in g for g in got):
        if proc.returncode is not None:
            raise AssertionError(f"daemon exited {proc.returncode} before {wanted}")
        if loop.time() > deadline:
            raise AssertionError(f"no {wanted} within {limit_s}s; got {got}")
        try:
            got.append((await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.5)).decode())
        except TimeoutError:
            continue
    return got


async def test_sigterm_stops_cleanly_after_ready_and_watchdog(tmp_path: Path) -> None:
    fake = FakeBinance(data_file("binance_hftbacktest/usdm/btcusdt_20240808.gz"), 60_000,
                       Script(frames_per_second=500))
    await fake.start()
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.setblocking(False)
    env = {**os.environ, "NOTIFY_SOCKET": notify_path, "WATCHDOG_USEC": "1000000"}
    env.pop("STATE_DIRECTORY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebot", "--config", str(write_config(tmp_path, fake)), "run",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    # Drain the log pipe as it fills: a full pipe would block the daemon's logging.
    assert proc.stdout is not None
    drained = asyncio.create_task(proc.stdout.read())
    try:
        ready = await recv_until(sock, "READY=1", 120, proc)
        assert "binance_usdm connected 1/1 books" in ready[-1]
        # Kernel warm-up asked for start time before each module, with progress in STATUS.
        extends = [g for g in ready if g.startswith("EXTEND_TIMEOUT_USEC=")]
        assert len(extends) == len(DAEMON_MODULES), ready
        assert f"STATUS=compiling kernels: book (1/{len(DAEMON_MODULES)})" in extends[0]
        await recv_until(sock, "WATCHDOG=1", 10, proc)
        proc.send_signal(signal.SIGTERM)
        stopping = await recv_until(sock, "STOPPING=1", 10, proc)
        assert stopping
        rc = await asyncio.wait_for(proc.wait(), 10)
        output = (await drained).decode()
        assert rc == 0, output
        assert '"event": "service_stopped"' in output
        db = sqlite3.connect(tmp_path / "state" / "tradebot.sqlite3")
        assert db.execute("select count(*) from equity").fetchone()[0] >= 1
        db.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        sock.close()
        await fake.stop()


async def test_bad_config_exits_78_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = -1\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tradebot", "--config", str(path), "run",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 78
    assert b"server.port" in err and str(path).encode() in err
