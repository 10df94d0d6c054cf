"""One deadline per run, the framework's (``run_source``): a run it cuts short
gives each source kind the same observation or failure reason as when the
sources kept their own timeouts."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator

import pytest
import structlog
from aiohttp import web

from outagewatch.clock import SystemClock
from outagewatch.config import (
    HttpProbe,
    StatuspagePage,
    parse_config,
)
from outagewatch.lenses.appstore.source import build_chart_sources
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.lenses.statuspage.source import StatusPageSource
from outagewatch.lenses.traffic import TrafficQuery
from outagewatch.lenses.traffic.source import PrometheusQuerySource
from outagewatch.lenses.vantage import ControlResult, DnsControl, HttpControl
from outagewatch.lenses.vantage.source import DnsControlSource, HttpControlSource
from outagewatch.observations import ProbeResult
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.client import HttpClients
from outagewatch.sources.errors import SourceError
from tests.chat.conftest import openai_probe, source_for

from .conftest import FakeResolver, Serve

# Long past every deadline below; the handlers are cancelled when the server stops.
_HANG = 30.0


async def _hang(_request: web.Request) -> web.Response:
    await asyncio.sleep(_HANG)
    return web.Response(text="too late")


@pytest.fixture
async def hung(serve: Serve) -> str:
    """A server that accepts and reads every request but never answers."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _hang)
    url: str = await serve(app)
    return url


async def _failure(source: object, ctx: RunContext) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await run_source(source, ctx)  # type: ignore[arg-type]
    return caught.value


async def test_http_probe_over_its_deadline_is_a_timeout_result_with_phases(
    hung: str, run_context: RunContext
) -> None:
    source = HttpProbeSource("svc", "p", HttpProbe(kind="http", url=hung, timeout=0.3))
    (result,) = await asyncio.wait_for(run_source(source, run_context), 5)
    assert isinstance(result, ProbeResult)
    assert (result.success, result.reason, result.sub_reason) == (False, "timeout", None)
    assert result.detail == "waited for the answer, not done within 0.3s"
    assert set(result.phases) >= {"connect", "processing"}  # the phases so far
    assert 0.25 <= result.duration_seconds < 2


async def test_chat_probe_over_its_deadline_is_a_timeout_outcome(
    hung: str, run_context: RunContext
) -> None:
    source = source_for(openai_probe(hung + "/v1", None, timeout="400ms", max_chunk_gap="300ms"))
    (result,) = await asyncio.wait_for(run_source(source, run_context), 5)
    assert isinstance(result, ProbeResult) and result.chat is not None
    assert (result.reason, result.chat.outcome) == ("timeout", "timeout")
    assert result.detail == "no complete answer within 0.4s"
    assert "processing" in result.phases


async def test_status_page_over_its_deadline_fails_with_timeout(
    hung: str, run_context: RunContext
) -> None:
    config = StatuspagePage(kind="statuspage", url=hung, components=["x"], timeout=0.3)
    error = await _failure(StatusPageSource("claude", "main", config), run_context)
    assert (error.reason, error.detail) == ("timeout", "no answer within 0.3s")


async def test_traffic_query_over_its_deadline_fails_with_timeout(
    hung: str, run_context: RunContext
) -> None:
    config = TrafficQuery(url=hung, query="up", interval=10.0, timeout=0.3)
    error = await _failure(PrometheusQuerySource("claude", "requests", config), run_context)
    assert (error.reason, error.detail) == ("timeout", "no answer within 0.3s")


async def test_chart_feed_over_its_deadline_fails_with_timeout(
    hung: str, run_context: RunContext
) -> None:
    config = parse_config(
        {
            "services": {"claude": {"appstore": {"app_id": "6473753684"}}},
            "appstore": {"v2_base_url": hung + "/v2", "timeout": "300ms", "interval": "1m"},
        }
    )
    (source,) = build_chart_sources(config, random.Random(1))
    error = await _failure(source, run_context)
    assert (error.reason, error.detail) == ("timeout", "no answer within 0.3s")


async def test_http_control_over_its_deadline_is_a_timeout_control_result(
    hung: str, run_context: RunContext
) -> None:
    source = HttpControlSource("ref", HttpControl(kind="http", url=hung, timeout=0.3))
    (result,) = await asyncio.wait_for(run_source(source, run_context), 5)
    assert isinstance(result, ControlResult)
    assert (result.success, result.reason) == (False, "timeout")
    assert result.detail == "waited for the answer, not done within 0.3s"


class _HangingResolver(FakeResolver):
    async def resolve(  # type: ignore[override]
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[object]:
        await asyncio.sleep(_HANG)
        return []


@pytest.fixture
async def hanging_dns() -> AsyncIterator[RunContext]:
    clients = HttpClients(lambda: _HangingResolver({}))
    yield RunContext(http=clients, clock=SystemClock(), log=structlog.get_logger("test"))
    await clients.close()


async def test_dns_control_over_its_deadline_is_a_timeout_control_result(
    hanging_dns: RunContext,
) -> None:
    source = DnsControlSource("dns", DnsControl(kind="dns", host="example.org", timeout=0.3))
    (result,) = await asyncio.wait_for(run_source(source, hanging_dns), 5)
    assert isinstance(result, ControlResult)
    assert (result.success, result.reason) == (False, "timeout")
    assert result.detail == "resolving example.org timed out"


async def test_run_context_carries_the_deadline(run_context: RunContext) -> None:
    seen: list[float] = []

    class Probe:
        key = kind = "probe"
        interval, timeout, config = 10.0, 2.0, None
        log_context: dict[str, str] = {}

        async def collect(self, ctx: RunContext) -> list[ProbeResult]:
            seen.append(ctx.remaining())
            return []

    assert await run_source(Probe(), run_context) == []
    assert 1.5 < seen[0] <= 2.0
