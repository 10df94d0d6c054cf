"""The status page source against real local servers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from outagewatch.config import GooglePage, IncidentIoPage, StatuspagePage
from outagewatch.lenses.statuspage.source import StatusPageSource
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.errors import SourceError
from outagewatch.sources.retry_after import retry_after_seconds
from tests.statuspage.conftest import (
    FIXTURES,
    Reply,
    StatusServer,
    claude_summary,
    google_incident,
    incidentio_native,
    incidentio_summary,
)

SUMMARY = "/api/v2/summary.json"
CLAUDE_COMPONENTS = ["rwppv331jlwc", "Claude Console", "k8w3r06qmzrp", "yyzkbfz2thpt"]


def statuspage(url: str, **extra: Any) -> StatusPageSource:
    config = StatuspagePage(kind="statuspage", url=url, components=CLAUDE_COMPONENTS, **extra)
    return StatusPageSource("claude", "main", config)


async def failure(source: StatusPageSource, ctx: RunContext) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await run_source(source, ctx)
    return caught.value


async def test_real_summary_capture_becomes_a_snapshot(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies[SUMMARY] = Reply(
        (FIXTURES / "statuspage-summary-cloudflare-2026-08-07.json").read_bytes()
    )
    config = StatuspagePage(kind="statuspage", url=server.url(), components=["2htqrtyxmmtr"])
    [snap] = await run_source(StatusPageSource("cloudflare", "main", config), ctx)
    assert snap.components == {"2htqrtyxmmtr": "partial_outage"}
    assert snap.component_names == {"2htqrtyxmmtr": "Arica, Chile - (ARI)"}
    assert (snap.service, snap.page, snap.kind, snap.time) == (
        "cloudflare",
        "main",
        "statuspage",
        ctx.clock.time(),
    )
    assert snap.level == 1


async def test_real_google_capture_filtered_by_product(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies["/incidents.json"] = Reply(
        (FIXTURES / "gcp-incidents-2026-07.json").read_bytes()
    )
    config = GooglePage(kind="google", url=server.url("/incidents.json"), products=["Media CDN"])
    [snap] = await run_source(StatusPageSource("gcp", "cloud", config), ctx)
    assert snap.components == {"Media CDN": "operational"}
    assert [i.open for i in snap.incidents] == [False]
    assert snap.level == 0


async def test_html_error_page_with_200_is_a_failed_fetch(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies[SUMMARY] = Reply("<!DOCTYPE html><html><body>Oops</body></html>", 200)
    err = await failure(statuspage(server.url()), ctx)
    assert err.reason == "html"


async def test_truncated_json_body_is_invalid_json(server: StatusServer, ctx: RunContext) -> None:
    whole = (FIXTURES / "statuspage-summary-cloudflare-2026-08-07.json").read_bytes()
    server.replies[SUMMARY] = Reply(whole[: len(whole) // 2])
    err = await failure(statuspage(server.url()), ctx)
    assert err.reason == "invalid_json"


async def test_connection_closed_mid_body_is_truncated(ctx: RunContext) -> None:
    async def half_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5000\r\n\r\n" + b'{"components": [' + b" " * 100
        )
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(half_answer, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    async with raw:
        err = await failure(statuspage(f"http://127.0.0.1:{port}"), ctx)
    assert err.reason == "truncated"


async def test_old_anthropic_host_redirects_to_the_new_one(
    server: StatusServer, second_server: StatusServer, ctx: RunContext
) -> None:
    # Names resolve to loopback (conftest's resolver): the URLs keep the real hosts.
    new = second_server.url(host="status.claude.com")
    server.replies[SUMMARY] = Reply(b"", 301, {"Location": new + SUMMARY})
    second_server.replies[SUMMARY] = Reply(claude_summary(status="major_outage"))
    source = statuspage(server.url(host="status.anthropic.com"), redirect_to_other_hosts=True)
    [snap] = await run_source(source, ctx)
    assert snap.components["rwppv331jlwc"] == "major_outage"
    assert [r.host for r in server.requests] == [f"status.anthropic.com:{server.port}"]
    assert [r.host for r in second_server.requests] == [f"status.claude.com:{second_server.port}"]


@pytest.mark.parametrize(
    "reply",
    [
        Reply("<html>blocked</html>", 403, {"cf-mitigated": "challenge"}, "text/html"),
        Reply(
            "<html><title>Just a moment...</title>"
            "<script src='/cdn-cgi/challenge-platform/h/b/orchestrate'></script></html>",
            200,
            content_type="text/html",
        ),
    ],
    ids=["header", "page"],
)
async def test_bot_challenge_is_inconclusive_not_page_down(
    server: StatusServer, ctx: RunContext, reply: Reply
) -> None:
    server.replies[SUMMARY] = reply
    err = await failure(statuspage(server.url()), ctx)
    assert err.reason == "challenge"


async def test_conditional_request_reuses_the_last_reading_on_304(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies[SUMMARY] = Reply(
        claude_summary(status="partial_outage"),
        headers={"ETag": '"v1"', "Last-Modified": "Fri, 07 Aug 2026 02:48:45 GMT"},
    )
    source = statuspage(server.url())
    await run_source(source, ctx)
    server.replies[SUMMARY] = Reply(b"", 304)
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    [snap] = await run_source(source, ctx)
    assert snap.components["rwppv331jlwc"] == "partial_outage"
    assert snap.time == ctx.clock.time()
    assert server.requests[1].headers["If-None-Match"] == '"v1"'
    assert server.requests[1].headers["If-Modified-Since"] == "Fri, 07 Aug 2026 02:48:45 GMT"


async def test_rate_limit_backs_off_for_retry_after_then_recovers(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies[SUMMARY] = Reply("slow down", 429, {"Retry-After": "180"}, "text/plain")
    source = statuspage(server.url(), interval="60s")
    assert (await failure(source, ctx)).reason == "rate_limited"
    # 180 s is three intervals: the next two runs do not touch the server.
    assert [(await failure(source, ctx)).reason for _ in range(2)] == ["backoff", "backoff"]
    assert len(server.requests) == 1
    server.replies[SUMMARY] = Reply(claude_summary())
    [snap] = await run_source(source, ctx)
    assert snap.components["rwppv331jlwc"] == "operational"


async def test_server_errors_back_off_doubling(server: StatusServer, ctx: RunContext) -> None:
    server.replies[SUMMARY] = Reply("<html>bad gateway</html>", 502, content_type="text/html")
    source = statuspage(server.url(), interval="60s")
    reasons = [(await failure(source, ctx)).reason for _ in range(4)]
    # First failure skips nothing, the second one run: fetched on runs 1, 2 and 4.
    assert reasons == ["http_status", "http_status", "backoff", "http_status"]
    assert len(server.requests) == 3


async def test_body_over_the_cap_is_too_large(server: StatusServer, ctx: RunContext) -> None:
    server.replies[SUMMARY] = Reply(claude_summary())
    err = await failure(statuspage(server.url(), max_body_bytes=1000), ctx)
    assert err.reason == "too_large"


async def test_not_found_is_http_status(server: StatusServer, ctx: RunContext) -> None:
    err = await failure(statuspage(server.url("/nowhere")), ctx)
    assert (err.reason, err.detail) == ("http_status", "HTTP 404")


async def test_json_of_another_shape_is_bad_format(server: StatusServer, ctx: RunContext) -> None:
    server.replies[SUMMARY] = Reply({"hello": "world"})
    assert (await failure(statuspage(server.url()), ctx)).reason == "bad_format"


async def test_unreachable_page_is_connect(ctx: RunContext) -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    assert (await failure(statuspage(f"http://127.0.0.1:{port}"), ctx)).reason == "connect"


async def test_slow_page_is_timeout(server: StatusServer, ctx: RunContext) -> None:
    release = asyncio.Event()

    async def stall(_request: web.Request) -> web.Response:
        await asyncio.wait_for(release.wait(), 5)
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_get(SUMMARY, stall)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        source = statuspage(f"http://127.0.0.1:{port}", timeout="200ms", interval="1s")
        assert (await failure(source, ctx)).reason == "timeout"
    finally:
        release.set()
        await runner.cleanup()


@pytest.mark.parametrize("incidents", [None, "absent"])
async def test_incidentio_compatible_json(
    server: StatusServer, ctx: RunContext, incidents: object
) -> None:
    server.replies[SUMMARY] = Reply(incidentio_summary(incidents))
    config = IncidentIoPage(kind="incidentio", url=server.url(), components=["Login"])
    [snap] = await run_source(StatusPageSource("chatgpt", "main", config), ctx)
    assert snap.kind == "incidentio"
    assert snap.components == {"Login": "degraded_performance"}
    assert snap.incidents == ()


async def test_incidentio_falls_back_to_the_native_summary(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies[SUMMARY] = Reply("<html>gone</html>", 200, content_type="text/html")
    server.replies["/proxy/127.0.0.1"] = Reply(incidentio_native())
    config = IncidentIoPage(kind="incidentio", url=server.url(), components=["Chat Completions"])
    [snap] = await run_source(StatusPageSource("chatgpt", "main", config), ctx)
    assert snap.components == {"Chat Completions": "major_outage"}
    assert snap.level == 3


async def test_incidentio_without_fallback_reports_the_first_failure(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies["/proxy/127.0.0.1"] = Reply(incidentio_native())
    config = IncidentIoPage(kind="incidentio", url=server.url(), native_fallback=False)
    err = await failure(StatusPageSource("chatgpt", "main", config), ctx)
    assert err.reason == "http_status"
    assert [r.path for r in server.requests] == [SUMMARY]


async def test_google_open_incident_on_the_workspace_feed(
    server: StatusServer, ctx: RunContext
) -> None:
    server.replies["/appsstatus/dashboard/incidents.json"] = Reply(
        [google_incident("wsp1", "Gemini", end=""), google_incident("wsp2", "Gmail", end="")]
    )
    config = GooglePage(
        kind="google", url=server.url("/appsstatus/dashboard/incidents.json"), products=["Gemini"]
    )
    [snap] = await run_source(StatusPageSource("gemini", "app", config), ctx)
    assert [i.id for i in snap.open_incidents] == ["wsp1"]
    assert snap.components == {"Gemini": "major_outage"}


def test_retry_after_as_seconds_or_http_date() -> None:
    assert retry_after_seconds("120", 0.0) == 120.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:02:00 GMT", 60.0) == 60.0
    assert retry_after_seconds("soon", 0.0) is None
    assert retry_after_seconds(None, 0.0) is None
