"""One process per state: the SQLite state's lock file (tradebot/store/lock.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, metric
from tradebot.errors import StateLocked
from tradebot.store import lock

# Takes the lock of argv[1], says so, then waits for argv[2] (a file) before trying again, or
# sleeps; exits 75 when the lock is refused.
HOLDER = """
import sys, time, pathlib
import structlog
structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # stdout is the protocol
from tradebot.errors import StateLocked
from tradebot.store import lock
go = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
if go is not None:
    while not go.exists():
        time.sleep(0.001)
try:
    held = lock.acquire(sys.argv[1])
except StateLocked as exc:
    print("refused", exc.holder, flush=True)
    sys.exit(75)
print("held", flush=True)
time.sleep(60)
"""


def _spawn(url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", HOLDER, url, *extra], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)


def test_the_lock_file_sits_beside_the_sqlite_database(tmp_path: Path) -> None:
    assert lock.lock_path(f"sqlite:///{tmp_path}/s/t.sqlite3") == tmp_path / "s" / "t.sqlite3.lock"
    assert lock.lock_path("sqlite://") is None
    assert lock.lock_path("sqlite:///:memory:") is None
    assert lock.lock_path("postgresql+psycopg://u@h/db") is None
    assert not lock.acquire("sqlite:///:memory:").held


def test_a_second_holder_is_refused_naming_the_path_and_the_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state/t.sqlite3"
    refused = metric("tradebot_state_lock_refused_total")
    first = lock.acquire(url)
    assert first.held and first.path is not None
    assert first.path.read_text().strip() == str(os.getpid())
    with pytest.raises(StateLocked) as caught:
        lock.acquire(url)
    assert caught.value.path == str(first.path) and caught.value.holder == str(os.getpid())
    assert str(first.path) in str(caught.value) and "in use by process" in str(caught.value)
    assert metric("tradebot_state_lock_refused_total") == refused + 1
    first.release()
    first.release()  # idempotent
    again = lock.acquire(url)
    assert again.held
    again.release()


def test_a_lock_held_by_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    holder = _spawn(url)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StateLocked) as caught:
        lock.acquire(url)
    assert caught.value.holder == str(holder.pid)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    taken = lock.acquire(url)  # no stale lock: the kernel released it with the process
    assert taken.held
    taken.release()


def test_of_processes_started_at_the_same_instant_exactly_one_holds_the_lock(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.sqlite3"
    go = tmp_path / "go"
    procs = [_spawn(url, str(go)) for _ in range(4)]
    try:
        time.sleep(1.5)  # every process is importing or waiting on `go`
        go.touch()
        lines = []
        for p in procs:
            assert p.stdout is not None
            lines.append(p.stdout.readline().split())
        assert sorted(line[0] for line in lines) == ["held", "refused", "refused", "refused"]
        (winner,) = [p for p, line in zip(procs, lines, strict=True) if line[0] == "held"]
        for p, line in zip(procs, lines, strict=True):
            if p is not winner:
                assert p.wait(10) == 75
                # the pid, or nothing while the winner was between locking and writing it
                assert line[1:] in ([str(winner.pid)], [])
        assert winner.poll() is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
