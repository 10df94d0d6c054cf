"""Chat probes against fake providers replaying the captured streams and errors.

Every outcome class is produced here by a real-shaped input.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from outagewatch.clock import SystemClock
from outagewatch.lenses.chat import source as chat_source
from outagewatch.lenses.chat.source import ProviderError, classify_error
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.client import HttpClients
from outagewatch.sources.errors import SourceError

from ..conftest import FakeResolver, Serve
from .conftest import (
    KNOWN_KEY,
    Reply,
    StartProvider,
    anthropic_probe,
    fixture_bytes,
    fixture_headers,
    frames_of,
    openai_probe,
    run_probe,
    source_for,
)

ANTHROPIC = frames_of("anthropic-sse-stream.txt")
OPENAI = frames_of("openai-sse-stream.txt")
RATELIMIT_HEADERS = {
    k: v
    for k, v in fixture_headers("anthropic-message-200.headers.json").items()
    if k.startswith("anthropic-ratelimit-")
}


async def outcome_of(
    start: StartProvider, reply: Reply, ctx: RunContext, probe: Any, key_file: Path | None
) -> Any:
    fake = await start(reply)
    result = await run_probe(source_for(probe(fake.base_url, key_file)), ctx)
    assert result.chat is not None
    assert result.success == (result.chat.outcome == "ok")
    assert result.reason == (None if result.success else result.chat.outcome)
    return result


# Complete streams.


async def test_recorded_anthropic_stream_is_ok_with_ttft_at_the_first_text_delta(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    # 0.3 s between content_block_start and the first text delta: TTFT must include it.
    # 0.1 s before message_stop: the generation time tokens per second divide by.
    reply = Reply(ANTHROPIC, headers=RATELIMIT_HEADERS, delays={3: 0.3, 9: 0.1})
    fake = await provider(reply)
    result = await run_probe(source_for(anthropic_probe(fake.base_url, key_file)), run_context)
    stats = result.chat
    assert stats is not None and result.success, result.detail
    assert stats.outcome == "ok" and result.status_code == 200
    assert stats.ttft_seconds is not None and 0.3 <= stats.ttft_seconds < result.duration_seconds
    assert stats.max_chunk_gap_seconds is not None and stats.max_chunk_gap_seconds >= 0.29
    assert (stats.input_tokens, stats.output_tokens) == (135, 10)
    assert stats.output_tokens_per_second is not None
    # Generation took the 0.1 s pause (a little less as the client clocks it: the
    # first delta can arrive late).
    assert 10 / 0.2 < stats.output_tokens_per_second <= 10 / 0.08
    assert stats.ratelimit_remaining == {
        "requests": 49 / 50,
        "tokens": 36000 / 38000,
        "input_tokens": 28000 / 30000,
        "output_tokens": 1.0,
    }
    headers, body = fake.requests[0]
    assert headers["x-api-key"] == KNOWN_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Reply with one word: ok"}],
        "stream": True,
    }


async def test_tool_use_stream_is_ok_without_a_ttft(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply(frames_of("anthropic-sse-stream-tool-use.txt"))
    result = await outcome_of(provider, reply, run_context, anthropic_probe, key_file)
    assert result.chat.outcome == "ok"
    assert result.chat.ttft_seconds is None  # input_json_delta is not answer text
    assert result.chat.output_tokens == 74


async def test_recorded_openai_stream_is_ok_and_the_role_chunk_is_not_the_first_token(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29950",
    }
    reply = Reply(OPENAI, headers=headers, delays={1: 0.3})
    fake = await provider(reply)
    result = await run_probe(source_for(openai_probe(fake.base_url, key_file)), run_context)
    stats = result.chat
    assert stats is not None and result.success, result.detail
    assert stats.ttft_seconds is not None and stats.ttft_seconds >= 0.3
    assert (stats.input_tokens, stats.output_tokens) == (14, 47)
    assert stats.ratelimit_remaining == {"requests": 499 / 500, "tokens": 29950 / 30000}
    sent_headers, body = fake.requests[0]
    assert sent_headers["Authorization"] == f"Bearer {KNOWN_KEY}"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 16


async def test_json_mode_openai_stream_is_ok(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply(frames_of("openai-sse-stream-json-mode.txt"))
    result = await outcome_of(provider, reply, run_context, openai_probe, key_file)
    assert result.chat.outcome == "ok"
    assert result.chat.output_tokens == 14


async def test_extra_pings_comments_and_padding_do_not_disturb_the_stream(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    frames = [ANTHROPIC[0], ping, b": keep-alive\n\n"]
    for frame in ANTHROPIC[1:]:
        frames += [frame.replace(b"}\n\n", b"}      \n\n"), ping]
    result = await outcome_of(provider, Reply(frames), run_context, anthropic_probe, key_file)
    assert result.chat.outcome == "ok"


async def test_slow_drip_within_the_gap_limit_is_ok_and_measures_the_gap(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply(ANTHROPIC, drip=0.1)
    result = await outcome_of(
        provider,
        reply,
        run_context,
        lambda u, k: anthropic_probe(u, k, max_chunk_gap="1s"),
        key_file,
    )
    assert result.chat.outcome == "ok"
    assert 0.09 <= result.chat.max_chunk_gap_seconds < 1.0


async def test_max_completion_tokens_for_newer_openai_models(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    fake = await provider(Reply(OPENAI))
    probe = openai_probe(
        fake.base_url, key_file, max_tokens_field="max_completion_tokens", include_usage=False
    )
    await run_probe(source_for(probe), run_context)
    body = fake.requests[0][1]
    assert body["max_completion_tokens"] == 16
    assert "max_tokens" not in body and "stream_options" not in body


# Errors the providers answer with.

ERROR_FIXTURES = [
    ("anthropic-error-overloaded-529.json", 529, anthropic_probe, "overloaded"),
    ("anthropic-error-overloaded-529-2026-03.json", 529, anthropic_probe, "overloaded"),
    ("anthropic-error-rate-limit-429.json", 429, anthropic_probe, "rate_limited"),
    ("anthropic-error-invalid-request-400.json", 400, anthropic_probe, "bad_response"),
    ("anthropic-error-auth-invalid-key-401.json", 401, anthropic_probe, "auth"),
    ("anthropic-error-auth-missing-key-401.json", 401, anthropic_probe, "auth"),
    ("openai-error-insufficient-quota-429.json", 429, openai_probe, "quota"),
    ("openai-error-invalid-api-key-401.json", 401, openai_probe, "auth"),
]


@pytest.mark.parametrize(("name", "status", "probe", "outcome"), ERROR_FIXTURES)
async def test_recorded_error_bodies_are_classified(
    provider: StartProvider,
    run_context: RunContext,
    key_file: Path,
    name: str,
    status: int,
    probe: Any,
    outcome: str,
) -> None:
    headers = {}
    if name == "anthropic-error-rate-limit-429.json":
        headers = fixture_headers("anthropic-error-rate-limit-429.headers.json")
        headers["retry-after"] = "17"
    reply = Reply(
        [fixture_bytes(name)], status=status, content_type="application/json", headers=headers
    )
    result = await outcome_of(provider, reply, run_context, probe, key_file)
    assert result.chat.outcome == outcome
    assert result.status_code == status
    if headers:
        assert result.chat.should_retry is True
        assert result.chat.retry_after_seconds == 17.0


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (402, {"type": "error", "error": {"type": "billing_error", "message": "m"}}, "billing"),
        (403, {"type": "error", "error": {"type": "permission_error", "message": "m"}}, "auth"),
        (500, {"type": "error", "error": {"type": "api_error", "message": "m"}}, "server_error"),
        (
            504,
            {"type": "error", "error": {"type": "timeout_error", "message": "m"}},
            "server_error",
        ),
        (
            404,
            {"type": "error", "error": {"type": "not_found_error", "message": "m"}},
            "bad_response",
        ),
        # OpenAI's overloaded answer is a 503 with a generic type: the status says it.
        (
            503,
            {"error": {"message": "m", "type": "server_error", "param": None, "code": None}},
            "overloaded",
        ),
        (
            429,
            {"error": {"message": "m", "type": "requests", "code": "rate_limit_exceeded"}},
            "rate_limited",
        ),
        # Gemini's OpenAI-compatible endpoint wraps the error in a list.
        (
            429,
            [{"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED"}}],
            "rate_limited",
        ),
    ],
)
async def test_crafted_error_bodies_are_classified_on_status_and_type(
    provider: StartProvider,
    run_context: RunContext,
    key_file: Path,
    status: int,
    body: Any,
    outcome: str,
) -> None:
    reply = Reply([json.dumps(body).encode()], status=status, content_type="application/json")
    probe = openai_probe if isinstance(body, list) or "type" not in body else anthropic_probe
    result = await outcome_of(provider, reply, run_context, probe, key_file)
    assert result.chat.outcome == outcome


def test_classification_never_reads_the_message() -> None:
    # The same message with different types gives different classes, and vice versa.
    assert classify_error(429, ProviderError("rate_limit_error", None)) == "rate_limited"
    assert classify_error(429, ProviderError("insufficient_quota", "insufficient_quota")) == "quota"
    assert classify_error(None, ProviderError("overloaded_error", None)) == "overloaded"
    assert classify_error(None, ProviderError("something_new", None)) == "server_error"


async def test_overloaded_error_event_after_http_200_is_a_failure(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    error = fixture_bytes("anthropic-error-overloaded-529.json").replace(b"\n", b"")
    frames = [*ANTHROPIC[:4], b"event: error\ndata: " + error + b"\n\n"]
    result = await outcome_of(provider, Reply(frames), run_context, anthropic_probe, key_file)
    assert result.chat.outcome == "overloaded"
    assert result.status_code == 200
    assert result.chat.ttft_seconds is not None  # text had begun before the error


async def test_api_error_event_after_http_200_is_a_server_error(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    event = b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"x"}}\n\n'
    result = await outcome_of(
        provider, Reply([ANTHROPIC[0], event]), run_context, anthropic_probe, key_file
    )
    assert result.chat.outcome == "server_error"


async def test_openai_error_chunk_after_http_200_is_classified(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    error = (
        b'data: {"error":{"message":"x","type":"insufficient_quota",'
        b'"code":"insufficient_quota"}}\n\n'
    )
    result = await outcome_of(
        provider, Reply([OPENAI[0], error]), run_context, openai_probe, key_file
    )
    assert result.chat.outcome == "quota"


# Streams that end early, stall, or are not the provider's format.


@pytest.mark.parametrize(
    ("frames", "probe"), [(ANTHROPIC, anthropic_probe), (OPENAI, openai_probe)]
)
async def test_truncation_at_every_frame_boundary(
    provider: StartProvider,
    run_context: RunContext,
    key_file: Path,
    frames: list[bytes],
    probe: Any,
) -> None:
    fake = await provider(Reply())
    source = source_for(probe(fake.base_url, key_file))
    for cut in range(len(frames)):
        fake.reply = Reply(frames[:cut])
        result = await run_probe(source, run_context)
        assert result.chat is not None
        assert result.chat.outcome == "truncated", (cut, result.detail)
    # Cut inside the last frame too.
    fake.reply = Reply([*frames[:-1], frames[-1][:-3]])
    assert (await run_probe(source, run_context)).reason == "truncated"
    fake.reply = Reply(frames)
    assert (await run_probe(source, run_context)).success


async def test_done_without_a_finish_reason_is_truncated(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply([*OPENAI[:5], b"data: [DONE]\n\n"])
    result = await outcome_of(provider, reply, run_context, openai_probe, key_file)
    assert result.chat.outcome == "truncated"


async def test_stall_longer_than_the_gap_limit_is_stalled(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply(ANTHROPIC[:5], hang_after=True)
    result = await outcome_of(
        provider,
        reply,
        run_context,
        lambda u, k: anthropic_probe(u, k, max_chunk_gap="300ms", timeout="5s"),
        key_file,
    )
    assert result.chat.outcome == "stalled"
    assert 0.3 <= result.duration_seconds < 2.0


async def test_slow_drip_past_the_timeout_times_out(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply(OPENAI, drip=0.1)
    result = await outcome_of(
        provider,
        reply,
        run_context,
        lambda u, k: openai_probe(u, k, timeout="1s", max_chunk_gap="500ms"),
        key_file,
    )
    assert result.chat.outcome == "timeout"
    assert 1.0 <= result.duration_seconds < 2.0
    assert result.chat.ttft_seconds is not None  # what it saw before is still reported


async def test_server_that_never_sends_headers_times_out(
    serve: Serve, run_context: RunContext, key_file: Path
) -> None:
    async def hang(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(30)
        return web.Response()

    app = web.Application()
    app.router.add_post("/v1/messages", hang)
    base = await serve(app) + "/v1"
    probe = anthropic_probe(base, key_file, timeout="500ms", max_chunk_gap="200ms")
    result = await run_probe(source_for(probe), run_context)
    assert result.reason == "timeout"


async def test_json_message_instead_of_a_stream_is_a_bad_response(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    # A real non-streamed Message: right provider, wrong content type for a streamed call.
    reply = Reply([fixture_bytes("anthropic-message-200.json")], content_type="application/json")
    result = await outcome_of(provider, reply, run_context, anthropic_probe, key_file)
    assert result.chat.outcome == "bad_response"
    assert "content type" in (result.detail or "")


async def test_html_page_with_200_is_a_bad_response_and_with_502_a_server_error(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    page = b"<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>"
    ok_page = await outcome_of(
        provider, Reply([page], content_type="text/html"), run_context, openai_probe, key_file
    )
    assert ok_page.chat.outcome == "bad_response"
    bad_gateway = await outcome_of(
        provider,
        Reply([page], status=502, content_type="text/html"),
        run_context,
        openai_probe,
        key_file,
    )
    assert bad_gateway.chat.outcome == "server_error"
    waf = await outcome_of(
        provider,
        Reply([page], status=403, content_type="text/html"),
        run_context,
        openai_probe,
        key_file,
    )
    assert waf.chat.outcome == "bad_response"  # not the provider's auth error


async def test_stream_of_something_else_is_a_bad_response(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    # An OpenAI stream sent to an Anthropic probe: not the format we asked for.
    result = await outcome_of(provider, Reply(OPENAI), run_context, anthropic_probe, key_file)
    assert result.chat.outcome == "bad_response"
    garbage = await outcome_of(
        provider, Reply([b"data: <html>\n\n"]), run_context, openai_probe, key_file
    )
    assert garbage.chat.outcome == "bad_response"
    early = await outcome_of(provider, Reply(ANTHROPIC[3:]), run_context, anthropic_probe, key_file)
    assert early.chat.outcome == "bad_response"
    assert "before message_start" in (early.detail or "")


async def test_oversized_stream_is_a_bad_response(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    ping = b'event: ping\ndata: {"type": "ping"}\n\n'
    reply = Reply([ANTHROPIC[0], *[ping * 64] * 200])  # ~420 kB of pings, never a stop
    result = await outcome_of(
        provider,
        reply,
        run_context,
        lambda u, k: anthropic_probe(u, k, max_stream_bytes=65536),
        key_file,
    )
    assert result.chat.outcome == "bad_response"
    assert "exceeds 65536 bytes" in (result.detail or "")


# Anthropic's answer to a reached spend limit, as FORMATS.md quotes it: a 400 of the
# same type as a malformed request, told apart only by its message.
SPEND_LIMIT = {
    "type": "error",
    "error": {
        "type": "invalid_request_error",
        "message": "You have reached your specified API usage limits. "
        "You will regain access on 2026-12-01 at 00:00 UTC.",
    },
    "request_id": "req_011CSpendLimit",
}


async def test_spend_limit_is_quota_with_the_raw_type_kept(
    provider: StartProvider, run_context: RunContext, key_file: Path
) -> None:
    reply = Reply([json.dumps(SPEND_LIMIT).encode()], status=400, content_type="application/json")
    result = await outcome_of(provider, reply, run_context, anthropic_probe, key_file)
    assert (result.chat.outcome, result.status_code) == ("quota", 400)
    assert result.detail == (
        "HTTP 400 invalid_request_error (API usage limit reached) (request req_011CSpendLimit)"
    )
    assert "regain" not in result.detail  # the message itself is never copied


def test_only_a_400_invalid_request_saying_so_is_a_spend_limit() -> None:
    error = chat_source.provider_error_of(SPEND_LIMIT)
    assert error is not None and error.spend_limit
    assert classify_error(400, error) == "quota"
    other = chat_source.provider_error_of(
        {"error": {"type": "not_found_error", "message": SPEND_LIMIT["error"]["message"]}}
    )
    assert other is not None and not other.spend_limit
    assert classify_error(404, other) == "bad_response"
    wrong_model = chat_source.parse_provider_error(
        fixture_bytes("anthropic-error-invalid-request-400.json")
    )
    assert wrong_model is not None and not wrong_model.spend_limit
    assert classify_error(400, wrong_model) == "bad_response"


# Failures before any answer.


async def test_refused_connection_is_connect(run_context: RunContext, key_file: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    probe = anthropic_probe(f"http://127.0.0.1:{port}/v1", key_file)
    result = await run_probe(source_for(probe), run_context)
    assert result.chat is not None and result.chat.outcome == "connect"
    assert (result.sub_reason, result.detail) == ("refused", "connection refused")


async def test_unknown_host_is_dns(run_context: RunContext, key_file: Path) -> None:
    probe = openai_probe("https://api.example.invalid/v1", key_file)
    result = await run_probe(source_for(probe), run_context)
    assert result.chat is not None and result.chat.outcome == "dns"
    assert result.sub_reason == "nxdomain"
    assert result.detail == "unknown host api.example.invalid"


async def test_untrusted_certificate_is_tls(
    serve: Serve, ca: Any, hosts: dict[str, str], key_file: Path
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("chat.test").configure_cert(context)
    app = web.Application()
    base = await serve(app, ssl_context=context)
    hosts["chat.test"] = "127.0.0.1"
    port = base.rsplit(":", 1)[1]
    clients = HttpClients(lambda: FakeResolver(hosts))
    try:
        ctx = RunContext(http=clients, clock=SystemClock(), log=structlog.get_logger("test"))
        probe = anthropic_probe(f"https://chat.test:{port}/v1", key_file)
        result = await run_probe(source_for(probe), ctx)
    finally:
        await clients.close()
    assert result.chat is not None and result.chat.outcome == "tls"
    assert result.sub_reason == "unknown_ca"
    assert result.detail == "certificate verify failed: unable to get local issuer certificate"


# Keyless edge mode.


@pytest.mark.parametrize(
    ("name", "probe"),
    [
        ("anthropic-error-auth-missing-key-401.json", anthropic_probe),
        ("openai-error-invalid-api-key-401.json", openai_probe),
    ],
)
async def test_keyless_edge_is_up_when_it_answers_its_own_401(
    provider: StartProvider, run_context: RunContext, name: str, probe: Any
) -> None:
    reply = Reply([fixture_bytes(name)], status=401, content_type="application/json")
    fake = await provider(reply)
    result = await run_probe(source_for(probe(fake.base_url, None)), run_context)
    assert result.success and result.chat is not None and result.chat.outcome == "ok"
    headers, _ = fake.requests[0]
    assert "x-api-key" not in headers and "Authorization" not in headers


async def test_keyless_edge_fails_on_overload_html_or_an_open_door(
    provider: StartProvider, run_context: RunContext
) -> None:
    overloaded = Reply(
        [fixture_bytes("anthropic-error-overloaded-529.json")],
        status=529,
        content_type="application/json",
    )
    html = Reply([b"<html>401</html>"], status=401, content_type="text/html")
    for reply, outcome in (
        (overloaded, "overloaded"),
        (html, "bad_response"),
        (Reply(ANTHROPIC), "bad_response"),
    ):
        result = await outcome_of(provider, reply, run_context, anthropic_probe, None)
        assert result.chat.outcome == outcome


async def test_keyless_probe_returns_no_budget_status(
    provider: StartProvider, run_context: RunContext
) -> None:
    reply = Reply([fixture_bytes("openai-error-invalid-api-key-401.json")], status=401)
    fake = await provider(reply)
    observations = await run_source(source_for(openai_probe(fake.base_url, None)), run_context)
    assert len(observations) == 1


# Keys.


async def test_missing_key_file_fails_the_run_as_a_credential_error(
    provider: StartProvider, run_context: RunContext, tmp_path: Path
) -> None:
    fake = await provider(Reply(ANTHROPIC))
    probe = anthropic_probe(fake.base_url, tmp_path / "absent")
    with pytest.raises(SourceError) as raised:
        await run_source(source_for(probe), run_context)
    assert raised.value.reason == "credential"
    assert "cannot read API key file" in raised.value.detail
    assert fake.requests == []  # nothing was sent


async def test_key_from_a_systemd_credential(
    provider: StartProvider,
    run_context: RunContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = await provider(Reply(ANTHROPIC))
    probe = anthropic_probe(fake.base_url, None, auth="key", api_key_credential="anthropic-key")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SourceError, match=r"needs \$CREDENTIALS_DIRECTORY"):
        await run_source(source_for(probe), run_context)
    (tmp_path / "anthropic-key").write_text(f"  {KNOWN_KEY}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    result = await run_probe(source_for(probe), run_context)
    assert result.success
    assert fake.requests[-1][0]["x-api-key"] == KNOWN_KEY


@pytest.mark.parametrize(("content", "message"), [(b"\n", "is empty"), (b"sk one two", "one line")])
async def test_unusable_key_file_is_a_credential_error(
    run_context: RunContext, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        await run_source(source_for(anthropic_probe("http://127.0.0.1:9/v1", path)), run_context)
