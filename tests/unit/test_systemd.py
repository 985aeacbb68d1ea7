from __future__ import annotations

import os
import socket
from pathlib import Path

from tradebot.systemd import Notifier


def listen(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    return sock, path


def test_notifications_arrive_as_datagrams(tmp_path: Path) -> None:
    sock, path = listen(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000",
                         "WATCHDOG_PID": str(os.getpid())})
    assert notifier.watchdog_interval_s == 15.0
    assert notifier.ready("binance connected 2/2 books")
    assert notifier.watchdog()
    assert notifier.status("x")
    assert notifier.stopping()
    assert notifier.extend_timeout(120, "compiling kernels: book (1/20)")
    got = [sock.recv(4096).decode() for _ in range(5)]
    assert got == ["READY=1\nSTATUS=binance connected 2/2 books", "WATCHDOG=1", "STATUS=x",
                   "STOPPING=1\nSTATUS=stopping",
                   "EXTEND_TIMEOUT_USEC=120000000\nSTATUS=compiling kernels: book (1/20)"]
    notifier.close()
    sock.close()


def test_abstract_socket_addresses_are_supported(tmp_path: Path) -> None:
    name = f"tradebot-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    assert Notifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
    assert sock.recv(100) == b"WATCHDOG=1"
    sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert not notifier.ready("x") and not notifier.watchdog()
    assert notifier.watchdog_interval_s == 0.0


def test_watchdog_for_another_pid_is_ignored() -> None:
    notifier = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_interval_s == 0.0
