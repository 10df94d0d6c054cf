"""Fake chat providers: real aiohttp apps on 127.0.0.1 replaying the captured streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from outagewatch.config import AnthropicProbe, OpenAIProbe
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.chat.source import AnthropicProbeSource, ChatProbeSource, OpenAIProbeSource
from outagewatch.observations import ChatBudgetStatus, Observation, ProbeResult
from outagewatch.sources.base import RunContext, run_source

from ..conftest import FIXTURES, Serve

# What the tests use as a key: it must never show up in any output.
KNOWN_KEY = "sk-test-9f2b7c1e4d6a8b0c3e5f7a9b1d3c5e7f"
SSE = "text/event-stream; charset=utf-8"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


def fixture_headers(name: str) -> dict[str, str]:
    """Headers of a recorded response, without the ones aiohttp sets itself."""
    headers: dict[str, str] = fixture_json(name)["headers"]
    skip = {"content-length", "connection", "content-type"}
    return {k: v for k, v in headers.items() if k not in skip}


def frames_of(name: str) -> list[bytes]:
    """A recorded stream cut into its SSE frames (each ending in its blank line)."""
    body = fixture_bytes(name)
    return [part + b"\n\n" for part in body.split(b"\n\n") if part.strip()]


@dataclass
class Reply:
    """What the fake provider answers: status, headers, and a body sent frame by frame."""

    frames: Sequence[bytes] = ()
    status: int = 200
    content_type: str = SSE
    headers: dict[str, str] = field(default_factory=dict)
    delays: dict[int, float] = field(default_factory=dict)  # sleep before frame i
    drip: float = 0.0  # sleep before every frame
    hang_after: bool = False  # keep the connection open after the last frame


@dataclass
class FakeProvider:
    """A provider on loopback; records every request it got."""

    reply: Reply
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), json.loads(body) if body else None))
        reply = self.reply
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = reply.content_type.split(";")[0]
        if "charset=" in reply.content_type:
            response.charset = reply.content_type.split("charset=")[1]
        await response.prepare(request)
        for index, frame in enumerate(reply.frames):
            delay = reply.delays.get(index, reply.drip)
            if delay:
                await asyncio.sleep(delay)
            await response.write(frame)
        if reply.hang_after:
            await asyncio.sleep(30)
        return response


StartProvider = Callable[[Reply], Any]


@pytest.fixture
def provider(serve: Serve) -> StartProvider:
    """Start a fake provider answering every POST with ``reply``."""

    async def start(reply: Reply) -> FakeProvider:
        fake = FakeProvider(reply)
        app = web.Application()
        app.router.add_post("/v1/messages", fake.handle)
        app.router.add_post("/v1/chat/completions", fake.handle)
        fake.base_url = await serve(app) + "/v1"
        return fake

    return start


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-key"
    path.write_text(KNOWN_KEY + "\n")
    return path


def _probe_values(base_url: str, model: str, key_file: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "base_url": base_url,
        "model": model,
        "timeout": "5s",
        "max_chunk_gap": "2s",
    }
    if key_file is not None:
        values["api_key_file"] = key_file
    else:
        values["auth"] = "none"
    return values


def anthropic_probe(base_url: str, key_file: Path | None, **overrides: Any) -> AnthropicProbe:
    values = _probe_values(base_url, "claude-haiku-4-5", key_file)
    return AnthropicProbe.model_validate({**values, **overrides})


def openai_probe(base_url: str, key_file: Path | None, **overrides: Any) -> OpenAIProbe:
    values = _probe_values(base_url, "gpt-4o-mini", key_file)
    return OpenAIProbe.model_validate({**values, **overrides})


def source_for(
    probe: AnthropicProbe | OpenAIProbe, budget: ChatBudget | None = None
) -> ChatProbeSource:
    kind = AnthropicProbeSource if isinstance(probe, AnthropicProbe) else OpenAIProbeSource
    return kind("claude", "chat", probe, budget or ChatBudget())


def result_of(observations: Sequence[Observation]) -> ProbeResult:
    results = [o for o in observations if isinstance(o, ProbeResult)]
    assert len(results) == 1
    return results[0]


def budget_of(observations: Sequence[Observation]) -> ChatBudgetStatus:
    statuses = [o for o in observations if isinstance(o, ChatBudgetStatus)]
    assert len(statuses) == 1
    return statuses[0]


async def run_probe(source: ChatProbeSource, ctx: RunContext) -> ProbeResult:
    return result_of(await run_source(source, ctx))
