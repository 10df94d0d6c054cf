"""The `prometheus` source against a Prometheus-shaped HTTP API on loopback: the
answers a real server gives (success, error JSON, empty vector, NaN) and the ones a
broken path gives (refused, slow, HTML, too big), each a named failure reason."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from outagewatch.lenses.traffic import TrafficQuery, TrafficSample
from outagewatch.lenses.traffic.source import FAILURE_REASONS, PrometheusQuerySource
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.errors import SourceError
from tests.conftest import Serve
from tests.daemon_process import free_port


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


class Api:
    """A stand-in for /api/v1/query whose answer the test sets; it records requests."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = vector("12.5")
        self.delay = 0.0
        self.requests: list[web.Request] = []

    def app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            self.requests.append(request)
            await asyncio.sleep(self.delay)
            text = self.body if isinstance(self.body, str) else json.dumps(self.body)
            kind = "text/html" if isinstance(self.body, str) else "application/json"
            return web.Response(status=self.status, text=text, content_type=kind)

        app = web.Application()
        app.router.add_get("/api/v1/query", query)
        return app


def source(url: str, **fields: Any) -> PrometheusQuerySource:
    cfg = TrafficQuery(
        url=url,
        query="sum(rate(x[1m]))",
        interval=10.0,
        timeout=fields.pop("timeout", 1.0),
        **fields,
    )
    return PrometheusQuerySource("claude", "requests", cfg)


async def failure(src: PrometheusQuerySource, ctx: RunContext) -> SourceError:
    with pytest.raises(SourceError) as caught:
        await run_source(src, ctx)
    assert caught.value.reason in FAILURE_REASONS
    return caught.value


async def test_a_vector_is_summed_into_one_sample(serve: Serve, run_context: RunContext) -> None:
    api = Api()
    base = await serve(api.app())
    api.body = vector("1.5", "2.5")
    (sample,) = await run_source(source(base, max_series=2), run_context)
    assert isinstance(sample, TrafficSample)
    assert (sample.service, sample.query, sample.value, sample.series) == (
        "claude",
        "requests",
        4.0,
        2,
    )
    request = api.requests[0]
    assert request.query["query"] == "sum(rate(x[1m]))"
    assert float(request.query["time"]) == pytest.approx(sample.time, abs=0.01)
    assert request.query["timeout"] == "900ms"
    assert "Authorization" not in request.headers


async def test_a_scalar_is_one_sample(serve: Serve, run_context: RunContext) -> None:
    api = Api()
    api.body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}}
    (sample,) = await run_source(source(await serve(api.app())), run_context)
    assert (sample.value, sample.series) == (7.0, 1)


@pytest.mark.parametrize(
    ("status", "body", "reason", "detail"),
    [
        (200, vector(), "no_data", "empty vector"),
        (200, vector("1", "2"), "too_many_series", "2 series, more than 1"),
        (200, vector("NaN"), "non_finite", "NaN"),
        (200, vector("+Inf"), "non_finite", "+Inf"),
        (200, vector("1e308", "1e308"), "non_finite", "overflows"),
        (200, vector("many"), "bad_response", "'many'"),
        (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
            "bad_response",
            "HTTP 400: bad_data: parse error at char 5",
        ),
        (
            503,
            {"status": "error", "errorType": "timeout", "error": "query timed out"},
            "bad_response",
            "HTTP 503: timeout: query timed out",
        ),
        (
            200,
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            "bad_response",
            "resultType 'matrix'",
        ),
        (200, "<html>login</html>", "bad_response", "not JSON"),
        (502, "<html>bad gateway</html>", "http_status", "HTTP 502"),
        (429, "slow down", "rate_limited", "HTTP 429"),
    ],
)
async def test_each_bad_answer_has_its_reason(
    serve: Serve, run_context: RunContext, status: int, body: Any, reason: str, detail: str
) -> None:
    api = Api()
    api.status, api.body = status, body
    error = await failure(
        source(await serve(api.app()), max_series=1 + (reason == "non_finite")), run_context
    )
    assert error.reason == reason
    assert detail in error.detail


async def test_refused_and_slow_and_too_large(serve: Serve, run_context: RunContext) -> None:
    refused = await failure(source(f"http://127.0.0.1:{free_port()}"), run_context)
    assert refused.reason == "connect"
    api = Api()
    base = await serve(api.app())
    api.delay = 2.0
    slow = await failure(source(base, timeout=0.3), run_context)
    assert (slow.reason, slow.detail) == ("timeout", "no answer within 0.3s")
    api.delay, api.body = 0.0, vector(*["1"] * 2000)
    large = await failure(source(base, max_series=1000, max_body_bytes=1000), run_context)
    assert large.reason == "too_large"


async def test_5xx_backs_off_then_recovers(serve: Serve, run_context: RunContext) -> None:
    api = Api()
    src = source(await serve(api.app()))
    api.status, api.body = 503, "unavailable"
    assert (await failure(src, run_context)).reason == "http_status"
    assert (await failure(src, run_context)).reason == "http_status"  # first wait: 1 interval
    assert (await failure(src, run_context)).reason == "backoff"  # second: 2 intervals
    assert len(api.requests) == 2
    api.status, api.body = 200, vector("3")
    (sample,) = await run_source(src, run_context)
    assert sample.value == 3.0


async def test_bearer_and_basic_credentials_are_sent(
    serve: Serve, run_context: RunContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = Api()
    base = await serve(api.app())
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    await run_source(source(base, auth="bearer", secret_file=token), run_context)
    assert api.requests[-1].headers["Authorization"] == "Bearer s3cret"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    await run_source(
        source(base, auth="basic", username="ow", secret_credential="token"), run_context
    )
    expected = "Basic " + base64.b64encode(b"ow:s3cret").decode()
    assert api.requests[-1].headers["Authorization"] == expected
    token.unlink()
    missing = await failure(source(base, auth="bearer", secret_file=token), run_context)
    assert missing.reason == "credential"
    assert "s3cret" not in str(missing)
