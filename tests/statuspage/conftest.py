"""Local status servers, the real captured payloads and crafted variants of them."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from outagewatch.clock import FakeClock
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_json(name: str) -> Any:
    """A shipped capture (see fixtures/SOURCES.md), parsed."""
    return json.loads((FIXTURES / name).read_bytes())


def summary_fixture() -> dict[str, Any]:
    """Cloudflare's real Statuspage summary: a group, a partial_outage, maintenance ahead."""
    return fixture_json("statuspage-summary-cloudflare-2026-08-07.json")  # type: ignore[no-any-return]


def claude_summary(
    status: str = "operational", indicator: str = "none", incidents: list[Any] | None = None
) -> dict[str, Any]:
    """A Claude-like summary: the real Cloudflare envelope with Claude's components."""
    doc = summary_fixture()
    template = doc["components"][1]
    doc["components"] = [
        {**template, "id": "rwppv331jlwc", "name": "claude.ai", "status": status},
        {**template, "id": "0qbwn08sd68x", "name": "Claude Console", "status": "operational"},
        {**template, "id": "k8w3r06qmzrp", "name": "Claude API", "status": "operational"},
        {**template, "id": "yyzkbfz2thpt", "name": "Claude Code", "status": "operational"},
    ]
    doc["status"] = {"indicator": indicator, "description": "crafted"}
    doc["incidents"] = incidents or []
    doc["scheduled_maintenances"] = []
    return doc


def open_incident(
    incident_id: str = "3wbkwvf5ypbk", impact: str = "minor", status: str = "investigating"
) -> dict[str, Any]:
    """A real incident from the shipped incidents capture, reopened."""
    incident = copy.deepcopy(fixture_json("statuspage-incidents-cloudflare-2026-08-07.json"))
    item = incident["incidents"][0]
    item.update(id=incident_id, impact=impact, status=status, resolved_at=None)
    return item  # type: ignore[no-any-return]


def incidentio_summary(incidents: Any = "absent") -> dict[str, Any]:
    """incident.io's Statuspage-compatible summary: ULID ids, no group, no time_zone."""
    doc: dict[str, Any] = {
        "page": {
            "id": "01JMXBRMFE6N2NNT7DG6XZQ6PW",
            "name": "OpenAI",
            "url": "https://status.openai.com",
            "updated_at": "2026-08-07T02:48:45.271Z",
        },
        "status": {"indicator": "none", "description": "All Systems Operational"},
        "components": [
            {
                "id": "01JMXBRMFE6N2NNT7DG6XZQ6PX",
                "name": "Chat Completions",
                "status": "operational",
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2026-08-07T00:00:00.000Z",
                "position": 1,
                "description": None,
                "showcase": True,
                "start_date": None,
                "group_id": None,
                "page_id": "01JMXBRMFE6N2NNT7DG6XZQ6PW",
                "only_show_if_degraded": False,
            },
            {
                "id": "01JMXBRMFE6N2NNT7DG6XZQ6PY",
                "name": "Login",
                "status": "degraded_performance",
                "created_at": "2025-01-01T00:00:00.000Z",
                "updated_at": "2026-08-07T00:00:00.000Z",
                "position": 2,
                "description": None,
                "showcase": True,
                "start_date": None,
                "group_id": None,
                "page_id": "01JMXBRMFE6N2NNT7DG6XZQ6PW",
                "only_show_if_degraded": False,
            },
        ],
        "scheduled_maintenances": None,
    }
    if incidents != "absent":
        doc["incidents"] = incidents
    return doc


def incidentio_native() -> dict[str, Any]:
    """incident.io's native /proxy/<host> summary (shape from docs/FORMATS.md)."""
    return {
        "summary": {
            "id": "01JMXBRMFE6N2NNT7DG6XZQ6PW",
            "name": "OpenAI",
            "public_url": "https://status.openai.com",
            "components": [
                {"id": "01JMXBRMFE6N2NNT7DG6XZQ6PX", "name": "Chat Completions"},
                {"id": "01JMXBRMFE6N2NNT7DG6XZQ6PY", "name": "Login"},
            ],
            "structure": {
                "items": [
                    {
                        "group": {
                            "id": "01JMXBRMFE6N2NNT7DG6XZQ6PZ",
                            "name": "APIs",
                            "components": [{"component_id": "01JMXBRMFE6N2NNT7DG6XZQ6PX"}],
                        }
                    }
                ]
            },
            "affected_components": [
                {"component_id": "01JMXBRMFE6N2NNT7DG6XZQ6PX", "status": "full_outage"}
            ],
            "ongoing_incidents": [
                {
                    "id": "01K1ZQ0W6AS3N2B9FJ6YQ4X1TM",
                    "name": "Elevated errors on Chat Completions",
                    "status": "investigating",
                    "published_at": "2026-08-07T01:00:00.000Z",
                    "current_worst_impact": "full_outage",
                }
            ],
            "scheduled_maintenances": [],
        }
    }


def google_incident(
    incident_id: str, product: str, end: Any = "absent", impact: str = "SERVICE_OUTAGE"
) -> dict[str, Any]:
    """A real Google incident from the shipped capture, retargeted at ``product``."""
    item = copy.deepcopy(fixture_json("gcp-incidents-2026-07.json")[1])
    item.update(id=incident_id, status_impact=impact, service_name=product)
    item["affected_products"] = [{"title": product, "id": "x", "current_title": product}]
    if end == "absent":
        del item["end"]
    else:
        item["end"] = end
    return item  # type: ignore[no-any-return]


@dataclass
class Reply:
    """What the fake status server answers on one path."""

    body: bytes | str | Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def render(self) -> tuple[bytes, dict[str, str]]:
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode()
        else:
            data = json.dumps(self.body).encode()
        return data, {"Content-Type": self.content_type, **self.headers}


class StatusServer:
    """A real aiohttp server on 127.0.0.1 whose replies tests set per path."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.requests: list[web.Request] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        reply = self.replies.get(request.path)
        if reply is None:
            return web.Response(status=404, text="<html>not found</html>", content_type="text/html")
        body, headers = reply.render()
        return web.Response(status=reply.status, body=body, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class LoopbackResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1, so real host names reach local servers."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host="127.0.0.1",
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[StatusServer]:
    srv = StatusServer()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
async def second_server() -> AsyncIterator[StatusServer]:
    srv = StatusServer()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def ctx(clock: FakeClock) -> AsyncIterator[RunContext]:
    """A run context whose HTTP resolves every name to loopback."""
    http = HttpClients(resolver_factory=LoopbackResolver)
    yield RunContext(http=http, clock=clock, log=structlog.get_logger("test"))
    await http.close()
