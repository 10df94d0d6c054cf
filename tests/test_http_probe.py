"""The HTTP endpoint probe against real local servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from outagewatch.clock import SystemClock
from outagewatch.config import HttpProbe
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.observations import ProbeResult
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.client import HttpClients

from .conftest import FakeResolver, Serve


def probe(url: str, **options: Any) -> HttpProbeSource:
    config = HttpProbe.model_validate({"kind": "http", "url": url, "timeout": "2s", **options})
    return HttpProbeSource("svc", "p", config)


async def run(source: HttpProbeSource, ctx: RunContext) -> ProbeResult:
    (result,) = await run_source(source, ctx)
    return result


def app(**routes: Any) -> web.Application:
    application = web.Application()
    for path, handler in routes.items():
        application.router.add_route("*", "/" + path.replace("_", "-"), handler)
    return application


async def ok(_r: web.Request) -> web.Response:
    return web.json_response({"status": {"indicator": "none"}, "items": [{"name": "api"}]})


async def test_200_is_success_with_phases(serve: Serve, run_context: RunContext) -> None:
    base = await serve(app(ok=ok))
    result = await run(probe(f"{base}/ok"), run_context)
    assert result.success is True
    assert result.reason is None
    assert result.status_code == 200
    assert result.phases["connect"] > 0
    assert result.phases["processing"] > 0
    assert result.phases.get("tls", 0.0) == 0.0  # plain HTTP has no handshake
    assert result.duration_seconds >= sum(result.phases.values()) * 0.9


async def test_500_fails_with_http_status(serve: Serve, run_context: RunContext) -> None:
    async def boom(_r: web.Request) -> web.Response:
        return web.Response(status=500, text="oops")

    base = await serve(app(boom=boom))
    result = await run(probe(f"{base}/boom"), run_context)
    assert (result.success, result.reason, result.status_code) == (False, "http_status", 500)


async def test_expected_4xx_from_a_keyless_api_edge_is_success(
    serve: Serve, run_context: RunContext
) -> None:
    async def edge(_r: web.Request) -> web.Response:
        return web.json_response(
            {"type": "error", "error": {"type": "authentication_error"}}, status=401
        )

    base = await serve(app(edge=edge))
    source = probe(
        f"{base}/edge",
        valid_status_codes=[401],
        fail_if_body_not_matches=['"error"'],
        json_path_equals=[{"path": "error.type", "equals": "authentication_error"}],
    )
    assert (await run(source, run_context)).success is True


async def test_redirect_chain_is_followed_and_phases_add_up(
    serve: Serve, run_context: RunContext
) -> None:
    async def hop1(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/hop2")

    async def hop2(_r: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/ok")

    base = await serve(app(hop1=hop1, hop2=hop2, ok=ok))
    result = await run(probe(f"{base}/hop1"), run_context)
    assert (result.success, result.status_code) == (True, 200)

    no_follow = await run(probe(f"{base}/hop1", follow_redirects=False), run_context)
    assert (no_follow.success, no_follow.reason, no_follow.status_code) == (
        False,
        "http_status",
        302,
    )


async def test_redirect_loop_fails_with_http_status(serve: Serve, run_context: RunContext) -> None:
    async def loop(_r: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    base = await serve(app(loop=loop))
    result = await run(probe(f"{base}/loop", max_redirects=3), run_context)
    assert (result.success, result.reason, result.status_code) == (False, "http_status", 302)
    assert result.detail == "stopped after 3 redirects"


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_server_that_never_answers_times_out(
    silent_server: int, run_context: RunContext
) -> None:
    result = await run(probe(f"http://127.0.0.1:{silent_server}/", timeout="500ms"), run_context)
    assert (result.success, result.reason) == (False, "timeout")
    assert 0.4 < result.duration_seconds < 1.5


async def test_connection_reset_fails_with_connect(run_context: RunContext) -> None:
    async def reset(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run(probe(f"http://127.0.0.1:{port}/"), run_context)
    finally:
        server.close()
    assert (result.success, result.reason, result.sub_reason) == (False, "connect", "reset")
    assert result.detail == "connection reset by peer"


async def test_refused_connection_fails_with_connect(run_context: RunContext) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    result = await run(probe(f"http://127.0.0.1:{port}/"), run_context)
    assert (result.success, result.reason, result.sub_reason) == (False, "connect", "refused")
    assert result.detail == "connection refused"


async def drip(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(int(request.query.get("chunks", "5"))):
        await response.write(b"x" * 100)
        await asyncio.sleep(float(request.query.get("pause", "0.05")))
    await response.write_eof()
    return response


async def test_dripped_body_is_transfer_time(serve: Serve, run_context: RunContext) -> None:
    base = await serve(app(drip=drip))
    result = await run(probe(f"{base}/drip?chunks=5&pause=0.05"), run_context)
    assert result.success is True
    assert result.phases["transfer"] >= 0.15


async def test_body_dripping_past_the_timeout_times_out(
    serve: Serve, run_context: RunContext
) -> None:
    base = await serve(app(drip=drip))
    result = await run(probe(f"{base}/drip?chunks=50&pause=0.05", timeout="500ms"), run_context)
    assert (result.success, result.reason) == (False, "timeout")


async def test_ten_mebibyte_body_is_too_large(serve: Serve, run_context: RunContext) -> None:
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = b"y" * (1 << 20)
        for _ in range(10):
            await response.write(chunk)
        await response.write_eof()
        return response

    base = await serve(app(huge=huge))
    result = await run(probe(f"{base}/huge"), run_context)
    assert (result.success, result.reason) == (False, "too_large")
    bigger_cap = await run(probe(f"{base}/huge", max_body_bytes=11 << 20), run_context)
    assert bigger_cap.success is True


async def test_cloudflare_challenge_is_inconclusive(serve: Serve, run_context: RunContext) -> None:
    async def challenge(_r: web.Request) -> web.Response:
        return web.Response(
            status=403, text="<html>Just a moment...</html>", headers={"cf-mitigated": "challenge"}
        )

    base = await serve(app(challenge=challenge))
    result = await run(probe(f"{base}/challenge"), run_context)
    assert result.success is None
    assert result.inconclusive
    assert result.reason == "challenge"


async def test_configured_challenge_marker_is_inconclusive(
    serve: Serve, run_context: RunContext
) -> None:
    async def page(_r: web.Request) -> web.Response:
        return web.Response(text="<title>Verify you are human</title>")

    base = await serve(app(page=page))
    result = await run(
        probe(f"{base}/page", challenge_markers=["Verify you are human"]), run_context
    )
    assert (result.success, result.reason) == (None, "challenge")


async def test_body_regexes_and_json_paths(serve: Serve, run_context: RunContext) -> None:
    base = await serve(app(ok=ok))
    url = f"{base}/ok"
    cases = [
        ({"fail_if_body_matches": ["indicator"]}, False),
        ({"fail_if_body_not_matches": ["nothing-like-this"]}, False),
        ({"fail_if_body_not_matches": ['"indicator": "none"']}, True),
        ({"json_path_equals": [{"path": "status.indicator", "equals": "none"}]}, True),
        ({"json_path_equals": [{"path": "items.0.name", "equals": "api"}]}, True),
        ({"json_path_equals": [{"path": "status.indicator", "equals": "major"}]}, False),
        ({"json_path_equals": [{"path": "status.missing", "equals": 1}]}, False),
    ]
    for options, expected in cases:
        result = await run(probe(url, **options), run_context)
        assert result.success is expected, options
        if not expected:
            assert result.reason == "body_mismatch", options


async def test_unresolvable_name_fails_with_dns(run_context: RunContext) -> None:
    result = await run(probe("http://no-such-host.invalid/"), run_context)
    assert (result.success, result.reason, result.sub_reason) == (False, "dns", "nxdomain")


async def test_ip_preference_falls_back_to_the_other_family(
    serve: Serve, run_context: RunContext, hosts: dict[str, str]
) -> None:
    base = await serve(app(ok=ok))
    port = base.rsplit(":", 1)[1]
    hosts["v4only.test"] = "127.0.0.1"
    url = f"http://v4only.test:{port}/ok"
    assert (await run(probe(url, preferred_ip_protocol="ip6"), run_context)).success is True
    strict = await run(
        probe(url, preferred_ip_protocol="ip6", ip_protocol_fallback=False), run_context
    )
    assert (strict.success, strict.reason) == (False, "dns")
    assert (await run(probe(url, preferred_ip_protocol="ip4"), run_context)).success is True


async def tls_app_server(serve: Serve, ca: Any, **cert_options: Any) -> str:
    cert = ca.issue_cert("api.test", **cert_options)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    base: str = await serve(app(ok=ok), ssl_context=context)
    return base.replace("127.0.0.1", "api.test")


async def test_tls_with_test_ca_reports_phases_and_expiry(
    serve: Serve, run_context: RunContext, ca: Any, hosts: dict[str, str], tmp_path: Any
) -> None:
    hosts["api.test"] = "127.0.0.1"
    not_after = dt.datetime(2031, 5, 17, 12, 0, 0, tzinfo=dt.UTC)
    base = await tls_app_server(serve, ca, not_after=not_after)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    result = await run(probe(f"{base}/ok", tls_ca_file=str(ca_file)), run_context)
    assert result.success is True, result.detail
    assert result.phases["tls"] > 0
    assert result.tls_earliest_expiry == not_after.timestamp()

    untrusted = await run(probe(f"{base}/ok"), run_context)
    assert (untrusted.success, untrusted.reason) == (False, "tls")

    skipped = await run(probe(f"{base}/ok", tls_insecure_skip_verify=True), run_context)
    assert skipped.success is True
    assert skipped.tls_earliest_expiry == not_after.timestamp()


async def test_expired_certificate_fails_with_tls(
    serve: Serve, run_context: RunContext, ca: Any, hosts: dict[str, str], tmp_path: Any
) -> None:
    hosts["api.test"] = "127.0.0.1"
    now = dt.datetime.now(dt.UTC)
    base = await tls_app_server(
        serve, ca, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    result = await run(probe(f"{base}/ok", tls_ca_file=str(ca_file)), run_context)
    assert (result.success, result.reason, result.sub_reason) == (False, "tls", "expired")
    assert result.detail == "certificate verify failed: certificate has expired"


async def test_self_signed_certificate_fails_with_tls_self_signed(
    serve: Serve, run_context: RunContext, tmp_path: Any
) -> None:
    import trustme

    lone = trustme.CA()  # a CA's own certificate, served as the leaf: self-signed
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    lone.cert_pem.write_to_path(str(cert))
    lone.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    base = await serve(app(ok=ok), ssl_context=context)
    result = await run(probe(f"{base}/ok"), run_context)
    assert (result.success, result.reason, result.sub_reason) == (False, "tls", "self_signed")
    assert result.detail == "certificate verify failed: self-signed certificate"


class _SilentResolver(FakeResolver):
    """A resolver that never answers, as one behind a dead network path."""

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
        await asyncio.sleep(60)
        raise AssertionError("cancelled by the probe's timeout")


async def test_no_dns_answer_in_time_is_dns_timeout() -> None:
    clients = HttpClients(lambda: _SilentResolver({}))
    ctx = RunContext(http=clients, clock=SystemClock(), log=structlog.get_logger("test"))
    try:
        result = await run(probe("http://slow-dns.test/", timeout="300ms"), ctx)
    finally:
        await clients.close()
    assert (result.success, result.reason, result.sub_reason) == (False, "dns", "timeout")
    assert result.detail == "no DNS answer within 0.3s"


async def test_timeout_says_what_it_waited_for(serve: Serve, run_context: RunContext) -> None:
    async def slow(_r: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response()

    base = await serve(app(slow=slow))
    result = await run(probe(base + "/slow", timeout="300ms"), run_context)
    assert (result.success, result.reason, result.sub_reason) == (False, "timeout", None)
    assert result.detail == "waited for the answer, not done within 0.3s"
