"""A second daemon on the same state refuses to start with exit 75, whichever starts first;
the first runs on. A stuck store cannot hold SIGTERM past the unit's stop timeout (issue 9)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import aiohttp

from tests.conftest import data_file
from tests.integration.fake_binance import FakeBinance, Script, daemon_config

RECORDING = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
EX_TEMPFAIL = 75


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, name: str, fake: FakeBinance, state: Path, port: int,
                 extra_state: str = "") -> Path:
    return daemon_config(tmp_path / f"{name}.toml", fake, state, port, extra_state)


class Daemon:
    """One `tradebot` subprocess with its output drained as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        assert proc.stdout is not None
        self.output = asyncio.create_task(proc.stdout.read())

    @classmethod
    async def start(cls, config: Path, port: int, *command: str) -> Daemon:
        env = {**os.environ}
        env.pop("STATE_DIRECTORY", None)
        env.pop("NOTIFY_SOCKET", None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tradebot", "--config", str(config), *(command or ("run",)),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        return cls(proc, port)

    async def text(self) -> str:
        return (await asyncio.wait_for(self.output, 30)).decode()

    async def healthz(self) -> int:
        try:
            async with aiohttp.ClientSession() as s, \
                    s.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                return r.status
        except aiohttp.ClientError:
            return 0

    async def wait_healthy(self, limit_s: float = 120.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while await self.healthz() != 200:
            if self.proc.returncode is not None:
                raise AssertionError(f"exited {self.proc.returncode}: {await self.text()}")
            if loop.time() > deadline:
                raise AssertionError(f"no /healthz within {limit_s}s")
            await asyncio.sleep(0.1)

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def assert_refused(rc: int | None, output: str, state: Path, holder: int | None) -> None:
    assert rc == EX_TEMPFAIL, output
    assert '"event": "state_locked"' in output, output
    assert str(state / "tradebot.sqlite3.lock") in output
    if holder is not None:
        assert f'"holder_pid": "{holder}"' in output, output
    assert "Traceback" not in output
    assert '"event": "portfolio_rebuilt"' not in output  # refused before touching the store


async def test_two_daemons_started_at_the_same_instant_one_runs_the_other_exits_75(
        tmp_path: Path) -> None:
    fake = FakeBinance(data_file(RECORDING), 60_000, Script(frames_per_second=500))
    await fake.start()
    state = tmp_path / "state"
    ports = [free_port(), free_port()]
    configs = [write_config(tmp_path, f"d{i}", fake, state, ports[i]) for i in range(2)]
    daemons = await asyncio.gather(*(Daemon.start(c, p) for c, p in zip(configs, ports,
                                                                        strict=True)))
    try:
        waits = {asyncio.create_task(d.proc.wait()): d for d in daemons}
        done, _ = await asyncio.wait(waits, timeout=120, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, "neither daemon refused to start"
        loser = waits[done.pop()]
        (winner,) = [d for d in daemons if d is not loser]
        assert_refused(loser.proc.returncode, await loser.text(), state, None)
        await winner.wait_healthy()
        await asyncio.sleep(1.5)  # it keeps running: equity points, books
        assert winner.proc.returncode is None and await winner.healthz() == 200
        assert await winner.stop() == 0
        output = await winner.text()
        assert '"event": "service_stopped"' in output and "UNIQUE constraint" not in output
    finally:
        for d in daemons:
            await d.kill()
        await fake.stop()


async def test_a_daemon_or_a_replay_started_on_a_running_daemons_state_exits_75(
        tmp_path: Path) -> None:
    fake = FakeBinance(data_file(RECORDING), 60_000, Script(frames_per_second=500))
    await fake.start()
    state = tmp_path / "state"
    first_port, second_port = free_port(), free_port()
    first = await Daemon.start(write_config(tmp_path, "first", fake, state, first_port),
                               first_port)
    try:
        await first.wait_healthy()
        second = await Daemon.start(write_config(tmp_path, "second", fake, state, second_port),
                                    second_port)
        rc = await asyncio.wait_for(second.proc.wait(), 120)
        assert_refused(rc, await second.text(), state, first.proc.pid)
        db_url = f"sqlite:///{state / 'tradebot.sqlite3'}"
        replay = await Daemon.start(write_config(tmp_path, "replay", fake, state, 0), 0,
                                    "replay", str(data_file(RECORDING)), "--db", db_url,
                                    "--no-progress")
        rc = await asyncio.wait_for(replay.proc.wait(), 120)
        assert_refused(rc, await replay.text(), state, first.proc.pid)
        assert first.proc.returncode is None and await first.healthz() == 200
        assert await first.stop() == 0
    finally:
        await first.kill()
        await fake.stop()


async def test_sigterm_with_a_locked_database_exits_inside_the_stop_timeout(
        tmp_path: Path) -> None:
    fake = FakeBinance(data_file(RECORDING), 60_000, Script(frames_per_second=500))
    await fake.start()
    state = tmp_path / "state"
    port = free_port()
    config = write_config(tmp_path, "stuck", fake, state, port,
                          "flush_timeout_s = 1.0\nclose_timeout_s = 1.0")
    daemon = await Daemon.start(config, port)
    other = None
    try:
        await daemon.wait_healthy()
        await asyncio.sleep(1.0)  # the store is open and written to
        other = sqlite3.connect(state / "tradebot.sqlite3", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # every write of the daemon now waits (30 s busy)
        await asyncio.sleep(1.0)  # an equity point is stuck in the writer
        loop = asyncio.get_running_loop()
        started = loop.time()
        daemon.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(daemon.proc.wait(), 30)
        took = loop.time() - started
        output = await daemon.text()
        assert took < 10.0, (took, output)  # the unit's TimeoutStopSec is 20
        assert rc == 1, output  # facts were not committed: not a clean stop
        for event in ("store_flush_timed_out", "store_close_incomplete", "service_stopped"):
            assert f'"event": "{event}"' in output, output
        assert "Traceback" not in output
    finally:
        if other is not None:
            other.execute("ROLLBACK")
            other.close()
        await daemon.kill()
        await fake.stop()
