"""aiohttp application on the daemon's own loop, bound to 127.0.0.1 by default."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from tradebot.log import Throttle

log = structlog.get_logger(__name__)

STATIC = Path(__file__).with_name("static")
HTTP_BAD_REQUESTS = Counter(
    "tradebot_http_bad_requests_total",
    "Requests rejected before routing (too long a request line or header, not HTTP), by reason",
    ["reason"],
)
HTTP_HOST_REJECTED = Counter(
    "tradebot_http_host_rejected_total",
    "Requests refused because their Host header is not a name of this server (DNS rebinding)",
)
# Monitoring reads these by whatever name it knows the machine by; they serve no account data
# a page could steal beyond what /metrics already exports to the scraper.
_ANY_HOST = frozenset({"/metrics", "/healthz", "/readyz"})
_LOCAL_NAMES = ("127.0.0.1", "localhost", "[::1]")


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


def _split_host(value: str) -> tuple[str, str]:
    # "name", "name:port", "[v6]" or "[v6]:port" -> (lower-case name, port or "").
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name.lower() + "]", rest.removeprefix(":")
    name, _, port = value.partition(":")
    return name.lower(), port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostGuard:
    """Answer only requests addressed to a name of this server, against DNS rebinding.

    A page on another site whose DNS name is made to point at 127.0.0.1 reaches the API from
    the user's browser with its own name in the Host header; the browser's same-origin rule
    does not stop it, this check does. Allowed: `server.host`, 127.0.0.1, localhost, [::1]
    and any IP address (a rebinding needs a name), with no port or the bound one. `/metrics`
    and the health checks answer any Host (scrapers use the machine's name).
    """

    def __init__(self, host: str, port: Callable[[], int]) -> None:
        self._names = frozenset({host.lower(), *_LOCAL_NAMES})
        self._port = port
        self._throttle = Throttle(60.0)

    def allows(self, value: str | None) -> bool:
        """Return whether a Host header names this server (no header: an HTTP/1.0 client)."""
        if value is None:
            return True
        name, port = _split_host(value)
        if port and port != str(self._port()):
            return False
        return name in self._names or _is_ip(name)

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                         ) -> web.StreamResponse:
        """Refuse a request with a foreign Host header: 421 and a JSON error."""
        host = request.headers.get("Host")
        if request.path in _ANY_HOST or self.allows(host):
            return await handler(request)
        HTTP_HOST_REJECTED.inc()
        if (suppressed := self._throttle.ready("host")) is not None:
            log.warning("http_host_rejected", host=(host or "")[:100], path=request.path[:100],
                        suppressed=suppressed)
        return web.json_response(
            {"error": f"Host {host!r} is not a name of this server; use 127.0.0.1, localhost, "
                      f"[::1], an IP address or server.host, port {self._port()}"},
            status=421)


class _RequestErrorLog:
    """aiohttp's request-handler logger: a client's malformed request is a warning, not an error.

    aiohttp logs every request it cannot parse (a 10 kB request line, oversized headers) with
    `logger.exception` and a traceback; those are the client's mistakes, counted by reason.
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger("aiohttp.server")
        self._throttle = Throttle(60.0)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        self._logger.debug(*args, **kwargs)

    def exception(self, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        code = getattr(exc, "code", 500)
        if not isinstance(exc, HttpProcessingError) or not 400 <= code < 500:
            self._logger.exception(*args, **kwargs)
            return
        reason = type(exc).__name__
        HTTP_BAD_REQUESTS.labels(reason).inc()
        if (suppressed := self._throttle.ready(reason)) is not None:
            log.warning("http_request_rejected", reason=reason, status=code,
                        error=str(exc.message)[:200], suppressed=suppressed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class HttpServer:
    """Start and stop the aiohttp app on the running loop.

    Adds the Host check (`HostGuard`) to the app, and logs malformed requests as counted
    warnings.
    """

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        app.middlewares.append(HostGuard(host, lambda: self.port).middleware)
        self._runner = web.AppRunner(app, access_log=None, logger=_RequestErrorLog())
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
