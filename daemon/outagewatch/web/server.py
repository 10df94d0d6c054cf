"""Routes and handlers. Handlers read state and call into the daemon; nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware

from outagewatch.clock import Clock, SystemClock
from outagewatch.config import Config
from outagewatch.exposition import MetricsPage
from outagewatch.views import StatusQuery
from outagewatch.web.connections import ServerTimeouts
from outagewatch.web.reports import ReportIntake, add_report_routes
from outagewatch.web.security import (
    BasicAuth,
    ExternalURL,
    Handler,
    Network,
    WebConfig,
    WebSecurity,
    lifecycle_refusal,
    security_middleware,
)
from outagewatch.web.status import parse_refresh, render_status_page


@dataclass
class WebContext:
    """What the handlers may read or call."""

    status: StatusQuery
    config: Callable[[], Config]
    ready: Callable[[], bool]
    reload: Callable[[], Awaitable[bool]]
    reports: ReportIntake | None = None
    clock: Clock = field(default_factory=SystemClock)
    # The web config file, proxies, external URL, lifecycle flag: replaced on reload.
    security: Callable[[], WebSecurity] = field(default=lambda: _OPEN)
    timeouts: ServerTimeouts = field(default_factory=ServerTimeouts)


# No web config file, no trusted proxies, served at the root, lifecycle API off.
_OPEN: WebSecurity = WebSecurity(
    WebConfig(), BasicAuth({}), [], ExternalURL("http://localhost", "")
)


@dataclass(frozen=True)
class WebOptions:
    """The ``--web.*`` flags."""

    config_file: str | None = None
    external_url: str | None = None
    route_prefix: str | None = None
    trusted_proxies: tuple[Network, ...] = ()
    enable_lifecycle: bool = False
    max_connections: int = 1024
    timeouts: ServerTimeouts = field(default_factory=ServerTimeouts)


CONTEXT = web.AppKey("outagewatch_context", WebContext)


async def healthy(_request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def ready(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    if not ctx.ready():
        return web.Response(status=503, text="Not ready\n")
    problem = ctx.reports.unready_reason() if ctx.reports is not None else None
    if problem is not None:  # e.g. the disk is full: reports would get 503
        return web.Response(status=503, text=f"Not ready: {problem}\n")
    return web.Response(text="Ready\n")


async def reload(request: web.Request) -> web.Response:
    """``POST /-/reload``: only with ``--web.enable-lifecycle``, never cross-site."""
    ctx = request.app[CONTEXT]
    refusal = lifecycle_refusal(request, ctx.security())
    if refusal is not None:
        return web.Response(status=403, text=refusal + "\n")
    if await ctx.reload():
        return web.Response(text="Reloaded\n")
    return web.Response(status=500, text="Reload failed: see the log; the old config stays\n")


async def status_page(request: web.Request) -> web.Response:
    """``/``: the status page; ``?refresh=N`` reloads it every N seconds."""
    ctx = request.app[CONTEXT]
    refresh = parse_refresh(request.query.get("refresh"))
    now = ctx.clock.time()
    base = ctx.security().external.links
    return web.Response(
        text=render_status_page(ctx.status.document(ctx.config(), now, base), now, refresh, base),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def status_json(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: what the status page shows, as JSON."""
    ctx = request.app[CONTEXT]
    base = ctx.security().external.links
    return web.json_response(
        ctx.status.document(ctx.config(), ctx.clock.time(), base).json(),
        headers={"Cache-Control": "no-store"},
    )


class BodyTimeout(TimeoutError):
    """The request body did not arrive within the read timeout."""


def body_deadline(timeout: float) -> Middleware:
    """Fail a body that trickles in: the reader raises, the client gets a 408, the
    connection closes. A handler's own work after the body is not limited."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        if not request.body_exists or content.is_eof():
            return await handler(request)

        def expire() -> None:
            if not content.is_eof():
                content.set_exception(BodyTimeout())

        timer = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            return await handler(request)
        except BodyTimeout:
            raise web.HTTPRequestTimeout(
                text="Request body not received in time.\n", headers={"Connection": "close"}
            ) from None
        finally:
            timer.cancel()

    return middleware


def make_app(ctx: WebContext, metrics: MetricsPage) -> web.Application:
    """Every route under the route prefix, behind the web config's checks."""
    app = web.Application(
        client_max_size=1 << 20,
        middlewares=[security_middleware(ctx.security), body_deadline(ctx.timeouts.body)],
    )
    app[CONTEXT] = ctx
    prefix = ctx.security().external.prefix
    if prefix:

        async def to_prefix(_request: web.Request) -> web.Response:
            raise web.HTTPFound(prefix + "/")

        app.router.add_get(prefix, to_prefix)
    app.router.add_get(prefix + "/", status_page)
    app.router.add_get(prefix + "/api/v1/status", status_json)
    app.router.add_get(prefix + "/metrics", metrics.handle)
    app.router.add_get(prefix + "/-/healthy", healthy)
    app.router.add_get(prefix + "/-/ready", ready)
    app.router.add_post(prefix + "/-/reload", reload)
    if ctx.reports is not None:
        add_report_routes(app, ctx.reports, prefix)
    return app
