"""The HTTP server against hostile clients: a foreign Host header (DNS rebinding) gets 421, and
an oversized request line is a counted warning, not an ERROR with a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.conftest import metric
from tradebot.server.http import HostGuard, HttpServer, Readiness, build_app


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    app = build_app(Readiness(lambda: (True, {})), lambda: {"cash": "1"}, list, list)
    http = HttpServer(app, "127.0.0.1", 0)
    await http.start()
    yield http
    await http.stop()


async def get(port: int, path: str, host: str | None) -> tuple[int, dict | str]:
    headers = {} if host is None else {"Host": host}
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
        body = await (resp.json() if resp.content_type == "application/json" else resp.text())
        return resp.status, body


async def test_the_api_answers_its_own_names(server: HttpServer) -> None:
    port = server.port
    for host in (None, f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 f"192.168.1.20:{port}"):
        status, body = await get(port, "/api/portfolio", host)
        assert (status, body) == (200, {"cash": "1"}), host


async def test_a_foreign_host_header_gets_421_with_a_json_error(server: HttpServer) -> None:
    before = metric("tradebot_http_host_rejected_total")
    with capture_logs() as logs:
        for host in (f"evil.example:{server.port}", "evil.example", f"localhost:{server.port + 1}"):
            status, body = await get(server.port, "/api/portfolio", host)
            assert status == 421, host
            assert isinstance(body, dict) and "is not a name of this server" in body["error"]
        status, _ = await get(server.port, "/", "evil.example")
        assert status == 421
    assert metric("tradebot_http_host_rejected_total") == before + 4
    assert [e["event"] for e in logs] == ["http_host_rejected"]  # throttled: once a minute


async def test_metrics_and_health_answer_any_host(server: HttpServer) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        status, _ = await get(server.port, path, "tradebot-pi.lan:8480")
        assert status == 200, path


def test_host_guard_parses_names_and_ports() -> None:
    guard = HostGuard("trader.lan", lambda: 8480)
    assert guard.allows("trader.lan") and guard.allows("TRADER.LAN:8480")
    assert guard.allows("[::1]:8480") and guard.allows("[fe80::1]") and guard.allows("10.0.0.1")
    assert not guard.allows("trader.lan:80") and not guard.allows("[::1]:1")
    assert not guard.allows("attacker.example") and not guard.allows("")


async def test_an_oversized_request_line_is_a_counted_warning_not_an_error(
        server: HttpServer, caplog: pytest.LogCaptureFixture) -> None:
    before = metric("tradebot_http_bad_requests_total", reason="LineTooLong")
    with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        await writer.wait_closed()
    assert status_line.split()[1] in (b"400", b"414")
    assert metric("tradebot_http_bad_requests_total", reason="LineTooLong") == before + 1
    rejected = [e for e in logs if e["event"] == "http_request_rejected"]
    assert len(rejected) == 1 and rejected[0]["log_level"] == "warning"
    assert rejected[0]["reason"] == "LineTooLong"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Still serving.
    assert (await get(server.port, "/healthz", None))[0] == 200
