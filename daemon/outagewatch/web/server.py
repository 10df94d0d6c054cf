"""Routes and handlers. Handlers read state and call into the daemon; nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from outagewatch.clock import Clock, SystemClock
from outagewatch.config import Config
from outagewatch.exposition import MetricsPage
from outagewatch.pipeline import State
from outagewatch.web.reports import ReportIntake, add_report_routes
from outagewatch.web.status import parse_refresh, render_status_page, status_document


@dataclass
class WebContext:
    """What the handlers may read or call."""

    state: State
    config: Callable[[], Config]
    ready: Callable[[], bool]
    reload: Callable[[], Awaitable[bool]]
    reports: ReportIntake | None = None
    clock: Clock = field(default_factory=SystemClock)


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
    if await request.app[CONTEXT].reload():
        return web.Response(text="Reloaded\n")
    return web.Response(status=500, text="Reload failed: see the log; the old config stays\n")


async def status_page(request: web.Request) -> web.Response:
    """``/``: the status page; ``?refresh=N`` reloads it every N seconds."""
    ctx = request.app[CONTEXT]
    refresh = parse_refresh(request.query.get("refresh"))
    now = ctx.clock.time()
    return web.Response(
        text=render_status_page(status_document(ctx.config(), ctx.state, now), now, refresh),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


async def status_json(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: what the status page shows, as JSON."""
    ctx = request.app[CONTEXT]
    return web.json_response(
        status_document(ctx.config(), ctx.state, ctx.clock.time()),
        headers={"Cache-Control": "no-store"},
    )


def make_app(ctx: WebContext, metrics: MetricsPage) -> web.Application:
    app = web.Application(client_max_size=1 << 20)
    app[CONTEXT] = ctx
    app.router.add_get("/", status_page)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/metrics", metrics.handle)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_post("/-/reload", reload)
    if ctx.reports is not None:
        add_report_routes(app, ctx.reports)
    return app
