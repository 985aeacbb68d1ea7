"""aiohttp application on the daemon's own loop, bound to 127.0.0.1 by default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("static")


class Readiness:
    """Readiness as the server sees it: a verdict plus the reasons behind it."""

    def __init__(self, check: Callable[[], tuple[bool, dict[str, Any]]]) -> None:
        self.check = check


BarsQuery = Callable[[str | None, int], list[dict[str, Any]]]
MAX_BARS = 5000


def _no_bars(_instrument: str | None, _limit: int) -> list[dict[str, Any]]:
    return []


def _limit(raw: str) -> int | None:
    try:
        limit = int(raw)
    except ValueError:
        return None
    return limit if 1 <= limit <= MAX_BARS else None


def _bars_handler(bars: BarsQuery) -> Callable[[web.Request], Any]:
    async def api_bars(request: web.Request) -> web.Response:
        limit = _limit(request.query.get("limit", "100"))
        if limit is None:
            return web.json_response({"error": f"limit must be an integer in 1..{MAX_BARS}"},
                                     status=400)
        return web.json_response(bars(request.query.get("instrument") or None, limit))

    return api_bars


def build_app(readiness: Readiness, portfolio: Callable[[], dict[str, Any]],
              fills: Callable[[], list[dict[str, Any]]],
              orders: Callable[[], list[dict[str, Any]]], *,
              bars: BarsQuery = _no_bars,
              features: Callable[[], dict[str, Any]] = dict) -> web.Application:
    """Return the aiohttp application with every route.

    `bars(instrument or None, limit)` answers `/api/bars?instrument=...&limit=...` (newest
    first); `features()` answers `/api/features` (instrument -> name -> value, null until warm).
    """
    app = web.Application()

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        ready, detail = readiness.check()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    async def api_portfolio(_request: web.Request) -> web.Response:
        return web.json_response(portfolio())

    async def api_fills(_request: web.Request) -> web.Response:
        return web.json_response(fills())

    async def api_orders(_request: web.Request) -> web.Response:
        return web.json_response(orders())

    async def api_features(_request: web.Request) -> web.Response:
        return web.json_response(features())

    async def index(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/portfolio", api_portfolio)
    app.router.add_get("/api/fills", api_fills)
    app.router.add_get("/api/orders", api_orders)
    app.router.add_get("/api/bars", _bars_handler(bars))
    app.router.add_get("/api/features", api_features)
    app.router.add_get("/", index)
    return app


class HttpServer:
    """Start and stop the aiohttp app on the running loop."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self._host = host
        self._port = port
        self.port = port

    async def start(self) -> None:
        """Bind and serve; `port` holds the bound port (useful when configured as 0)."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("http_server_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop serving."""
        await self._runner.cleanup()
