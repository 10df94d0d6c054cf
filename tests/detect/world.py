"""A small world on loopback for daemon-level detection tests.

One aiohttp app serves a service's health endpoint, its official status page
(the real Statuspage summary envelope, an incident opened and resolved on cue)
and its chat API (the recorded Anthropic stream).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.chat.conftest import SSE, frames_of
from tests.statuspage.conftest import claude_summary, open_incident


def iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass
class World:
    """What the fake service answers; tests change it while the daemon watches."""

    health_status: int = 200
    incident_start: float | None = None  # an open minor incident that started then
    chat_requests: int = 0

    def summary(self) -> dict[str, Any]:
        if self.incident_start is None:
            return claude_summary()
        incident = open_incident("lead0test001", impact="minor")
        incident["started_at"] = incident["created_at"] = iso(self.incident_start)
        return claude_summary(
            status="degraded_performance", indicator="minor", incidents=[incident]
        )

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(status=self.health_status, text="ok\n")

    async def status(self, _request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(self.summary()), content_type="application/json")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.chat_requests += 1
        response = web.StreamResponse(headers={"Content-Type": SSE})
        await response.prepare(request)
        for frame in frames_of("anthropic-sse-stream.txt"):
            await response.write(frame)
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/api/v2/summary.json", self.status)
        app.router.add_post("/v1/messages", self.chat)
        return app
