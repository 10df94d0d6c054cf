"""The simulated world: fake provider APIs, status pages and App Store feeds.

One aiohttp app on 127.0.0.1 serves them all under path prefixes, in the
shapes the real services use (see /work/shared/docs/FORMATS.md and the
fixtures the source tests are built on): Anthropic's streamed Messages API
with its 529 ``overloaded_error`` and in-stream ``event: error``, an
OpenAI-compatible chat completions stream, a Statuspage v2 summary (Claude),
an incident.io Statuspage-compatible summary (OpenAI) and the App Store RSS
v2 top-free feed per country. What each answer is comes from the timeline at
the demo clock's current minute and from one seeded random generator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from aiohttp import web

from outagewatch.demo import timeline
from outagewatch.demo.timeline import ApiConditions

DEMO_API_KEY = "demo-key-not-a-secret"
CLAUDE_APP_ID = "6473753684"
CHATGPT_APP_ID = "6448311069"
_FILLER_APP_BASE = 1_000_000_000  # ids of the other apps in the charts

_OVERLOADED = {
    "type": "error",
    "error": {"type": "overloaded_error", "message": "Overloaded"},
    "request_id": "req_demo",
}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def _sse(event: str | None, data: Mapping[str, object]) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class World:
    """The fake services; ``minute()`` and ``now()`` give the demo time."""

    def __init__(
        self,
        minute: Callable[[], float],
        now: Callable[[], float],
        rng: random.Random,
        delay_scale: float,
    ) -> None:
        self.minute = minute
        self.now = now
        self.start = 0.0  # demo epoch of minute 0, set when the story begins
        self.rng = rng
        self.delay_scale = delay_scale  # story seconds -> wall seconds of delay
        self.served: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/anthropic/v1/messages", self.anthropic)
        app.router.add_post("/openai/v1/chat/completions", self.openai)
        app.router.add_get("/claude-web/", self.claude_web)
        app.router.add_get("/chatgpt-web/", self.chatgpt_web)
        app.router.add_get("/claude-status/api/v2/summary.json", self.claude_status)
        app.router.add_get("/openai-status/api/v2/summary.json", self.openai_status)
        app.router.add_get("/appstore/api/v2/{country}/apps/top-free/{limit}/apps.json", self.chart)
        return app

    # -- chat APIs ---------------------------------------------------------

    def _outcome(self, conditions: ApiConditions) -> str:
        draw = self.rng.random()
        for outcome, share in (
            ("overloaded", conditions.overloaded),
            ("stream_error", conditions.stream_error),
            ("stall", conditions.stall),
        ):
            if draw < share:
                return outcome
            draw -= share
        return "ok"

    def _ttft(self, conditions: ApiConditions) -> float:
        jitter = 0.85 + 0.3 * self.rng.random()
        return conditions.ttft_seconds * jitter * self.delay_scale

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("x-api-key") != DEMO_API_KEY:
            return web.json_response(
                {
                    "type": "error",
                    "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                },
                status=401,
            )
        await request.read()
        conditions = timeline.claude_api(self.minute())
        outcome = self._outcome(conditions)
        self.served[f"anthropic_{outcome}"] += 1
        if outcome == "overloaded":
            await asyncio.sleep(0.05 * self.delay_scale)
            return web.json_response(_OVERLOADED, status=529, headers={"x-should-retry": "true"})
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        usage = {"input_tokens": 12, "output_tokens": 1}
        message: dict[str, object] = {
            "id": "msg_demo",
            "type": "message",
            "role": "assistant",
            "model": "claude-demo",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        await response.write(_sse("message_start", {"type": "message_start", "message": message}))
        await asyncio.sleep(self._ttft(conditions))
        block = {"type": "text", "text": ""}
        await response.write(
            _sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": block},
            )
        )
        delta = {"type": "text_delta", "text": "ok"}
        await response.write(
            _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
        if outcome == "stream_error":
            await response.write(_sse("error", _OVERLOADED))
            return response
        if outcome == "stall":
            with contextlib.suppress(ConnectionResetError):
                await asyncio.sleep(30.0 * self.delay_scale)  # the client gives up first
            return response
        await response.write(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        await response.write(
            _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 2},
                },
            )
        )
        await response.write(_sse("message_stop", {"type": "message_stop"}))
        return response

    async def openai(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {DEMO_API_KEY}":
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        await request.read()
        conditions = timeline.chatgpt_api(self.minute())
        self.served["openai_ok"] += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        created = int(self.now())

        def chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
            return {
                "id": "chatcmpl-demo",
                "object": "chat.completion.chunk",
                "created": created,
                "model": "gpt-demo",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        await asyncio.sleep(self._ttft(conditions))
        await response.write(_sse(None, chunk({"role": "assistant", "content": ""})))
        await response.write(_sse(None, chunk({"content": "ok"})))
        await response.write(_sse(None, chunk({}, "stop")))
        usage = {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
        await response.write(_sse(None, {**chunk({}), "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        return response

    # -- web apps ----------------------------------------------------------

    async def _web(self, service: str) -> web.Response:
        if self.rng.random() < 1.0 - timeline.web_up_share(service, self.minute()):
            return web.Response(status=503, text="upstream connect error\n")
        return web.Response(text="<!doctype html><title>app</title>", content_type="text/html")

    async def claude_web(self, _request: web.Request) -> web.Response:
        return await self._web("claude")

    async def chatgpt_web(self, _request: web.Request) -> web.Response:
        return await self._web("chatgpt")

    # -- status pages ------------------------------------------------------

    def _page(self, name: str, url: str) -> dict[str, object]:
        return {
            "id": f"demo-{name}",
            "name": name,
            "url": url,
            "time_zone": "Etc/UTC",
            "updated_at": _iso(self.now()),
        }

    async def claude_status(self, request: web.Request) -> web.Response:
        minute = self.minute()
        official = timeline.claude_official(minute)
        descriptions = {
            "none": "All Systems Operational",
            "minor": "Minor Service Outage",
            "major": "Partial System Outage",
            "critical": "Major System Outage",
        }
        components = [
            {
                "id": "demo-claude-ai",
                "name": "claude.ai",
                "status": official.component,
                "group": False,
                "position": 1,
            },
            {
                "id": "demo-claude-api",
                "name": "Claude API (api.anthropic.com)",
                "status": official.component,
                "group": False,
                "position": 2,
            },
        ]
        incidents: list[dict[str, object]] = []
        if official.incident_status is not None:
            started = self.start + timeline.INCIDENT_STARTED * 60
            published = self.start + timeline.INCIDENT_PUBLISHED * 60
            resolved = self.start + timeline.INCIDENT_RESOLVED * 60
            closed = official.incident_status == "resolved"
            incidents.append(
                {
                    "id": "demo-incident-1",
                    "name": "Elevated errors on claude.ai and the API",
                    "status": official.incident_status,
                    "impact": "major",
                    "created_at": _iso(published),
                    "updated_at": _iso(self.now()),
                    "started_at": _iso(started),
                    "resolved_at": _iso(resolved) if closed else None,
                    "shortlink": "http://127.0.0.1/demo",
                    "incident_updates": [],
                }
            )
        return web.json_response(
            {
                "page": self._page("Claude", str(request.url.origin()) + "/claude-status"),
                "status": {
                    "indicator": official.indicator,
                    "description": descriptions[official.indicator],
                },
                "components": components,
                "incidents": incidents,
                "scheduled_maintenances": [],
            }
        )

    async def openai_status(self, request: web.Request) -> web.Response:
        # incident.io's compatible JSON: no `group`, `incidents` may be null.
        return web.json_response(
            {
                "page": self._page("OpenAI", str(request.url.origin()) + "/openai-status"),
                "status": {"indicator": "none", "description": "All Systems Operational"},
                "components": [
                    {"id": "01DEMOCHATGPT", "name": "ChatGPT", "status": "operational"},
                    {"id": "01DEMOAPI", "name": "Chat Completions", "status": "operational"},
                ],
                "incidents": None,
                "scheduled_maintenances": None,
            }
        )

    # -- App Store ---------------------------------------------------------

    async def chart(self, request: web.Request) -> web.Response:
        country = request.match_info["country"]
        limit = int(request.match_info["limit"])
        if country not in timeline.COUNTRIES:
            return web.Response(status=404)
        minute = self.minute()
        placed = {
            timeline.chart_rank("claude", country, minute): CLAUDE_APP_ID,
            timeline.chart_rank("chatgpt", country, minute): CHATGPT_APP_ID,
        }
        results = []
        filler = 0
        for position in range(1, limit + 1):
            app_id = placed.get(position)
            if app_id is None:
                filler += 1
                app_id = str(_FILLER_APP_BASE + filler)
            results.append(
                {
                    "artistName": "Demo",
                    "id": app_id,
                    "name": f"App {app_id}",
                    "releaseDate": "2023-05-18",
                    "kind": "apps",
                    "url": f"https://apps.apple.com/{country}/app/id{app_id}",
                }
            )
        self.served["appstore"] += 1
        return web.json_response(
            {
                "feed": {
                    "title": "Top Free Apps",
                    "country": country,
                    "updated": datetime.fromtimestamp(self.now(), tz=UTC).strftime(
                        "%a, %d %b %Y %H:%M:%S +0000"
                    ),
                    "results": results,
                }
            }
        )
