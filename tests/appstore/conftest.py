"""A local App Store feed server on 127.0.0.1: serves chart payloads by path,
answers conditional requests, and records every request it gets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import structlog
from aiohttp import web

from outagewatch.clock import FakeClock
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients


@dataclass
class Reply:
    """One answer: status, body, headers; ``etag`` turns on 304 for a match."""

    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    delay: float = 0.0


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]


class FeedServer:
    """Answers each path with its queue of replies; the last one repeats."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.requests: list[SeenRequest] = []
        self.base_url = ""

    def serve(self, path: str, *replies: Reply) -> None:
        self.replies[path] = list(replies)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path_qs
        self.requests.append(SeenRequest(path, dict(request.headers)))
        queue = self.replies.get(path)
        if not queue:
            return web.Response(status=404, text="no such feed")
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = dict(reply.headers)
        if reply.etag:
            headers["ETag"] = reply.etag
            if request.headers.get("If-None-Match") == reply.etag:
                return web.Response(status=304, headers=headers)
        if reply.last_modified:
            headers["Last-Modified"] = reply.last_modified
        headers["Content-Type"] = reply.content_type
        return web.Response(status=reply.status, body=reply.body, headers=headers)


@pytest.fixture
async def feed_server() -> AsyncIterator[FeedServer]:
    server = FeedServer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.base_url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def run_context(clock: FakeClock) -> AsyncIterator[RunContext]:
    http = HttpClients()
    try:
        yield RunContext(http=http, clock=clock, log=structlog.get_logger("test"))
    finally:
        await http.close()
