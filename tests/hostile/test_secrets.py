"""Secrets never leave (issue 16, row 2): a provider or proxy that echoes the API key
in error.type, error.code, request_id or Content-Type gets it into no log line, no
status JSON, no status page and no error answer."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import structlog
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.config import parse_config
from outagewatch.logging import configure
from outagewatch.scrub import REDACTED, Scrubber, config_secrets

from ..conftest import Serve
from ..daemon_process import DaemonProcess

KEY = "sk-ant-api03-Q7vX2mN9pL4kR8tY1wZ6cB3dF5gH0jS2aE4uI7oP9"  # 55 characters
TOKEN = "report-token-5d1f9c2e8a7b"
# A short Messages stream in the shape of the captured one (fixtures/anthropic-sse-stream.txt).
STREAM = "".join(
    f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
    for event in (
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "usage": {"input_tokens": 10, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 2},
        },
        {"type": "message_stop"},
    )
).encode()


def leaks(text: str) -> list[str]:
    """Pieces of the secrets found in ``text``: the whole, or any 12-character run."""
    found = []
    for secret in (KEY, TOKEN):
        for start in range(len(secret) - 11):
            if secret[start : start + 12] in text:
                found.append(secret[start : start + 12])
    return found


def provider() -> tuple[web.Application, list[str]]:
    """Answers a stream, then an error echoing the key, in turn, one echo path each."""
    served: list[str] = []
    echoes = [
        ("error.type", 400, {"type": "error", "error": {"type": KEY, "message": "m"}}, None),
        ("error.code", 401, {"error": {"type": "authentication_error", "code": KEY}}, None),
        ("request_id", 529, {"error": {"type": "overloaded_error"}, "request_id": KEY}, None),
        ("content-type", 200, None, f"application/json; charset={KEY}"),
    ]

    async def messages(request: web.Request) -> web.StreamResponse:
        assert request.headers["x-api-key"] == KEY
        number = len(served)
        if number % 2 == 0:
            served.append("stream")
            return web.Response(body=STREAM, headers={"Content-Type": "text/event-stream"})
        name, status, document, content_type = echoes[(number // 2) % len(echoes)]
        served.append(name)
        if content_type is not None:
            return web.Response(body=b"{}", status=status, headers={"Content-Type": content_type})
        return web.json_response(document, status=status)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app, served


async def test_an_echoed_key_reaches_no_log_no_status_and_no_page(
    tmp_path: Path, serve: Serve
) -> None:
    app, served = provider()
    base = await serve(app)
    (tmp_path / "key").write_text(KEY + "\n")
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n  claude:\n    probes:\n      chat:\n"
        f"        kind: anthropic\n        base_url: {base}/v1\n        model: m\n"
        f"        api_key_file: {tmp_path / 'key'}\n"
        "        interval: 300ms\n        timeout: 250ms\n        max_chunk_gap: 200ms\n"
        f"reports: {{tokens_file: {tmp_path / 'tokens'}}}\n"
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        deadline = time.monotonic() + 30
        while served.count("content-type") < 1 or len(served) < 9:
            assert time.monotonic() < deadline, served
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last answer's log line
        for path in ("/api/v1/status", "/", "/metrics", "/nonexistent"):
            _, text = await daemon.get(path)
            assert not leaks(text), (path, leaks(text))
        # An error answer that quotes what it was sent: a report with the key as token.
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{daemon.url}/api/v1/reports",
                json={"service": KEY, "problem": KEY},
                headers={"Authorization": f"Bearer {KEY}"},
            ) as response,
        ):
            body = await response.text()
        assert response.status >= 400
        assert not leaks(body), body
    finally:
        await daemon.stop()
    logs = daemon.logs()
    assert not leaks(logs), leaks(logs)
    downs = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and '"probe_down"' in line
    ]
    # Each echo path was taken and logged, with the key cut out.
    assert len(downs) >= 4, logs
    assert all(REDACTED in d["detail"] for d in downs), downs
    assert {"error.type", "error.code", "request_id", "content-type"} <= set(served)


# -- the scrubber's pieces, each against the real thing ---------------------------


def test_the_scrubber_cuts_whole_secrets_escaped_forms_and_runs_of_them() -> None:
    scrubber = Scrubber([KEY, TOKEN, "short"])
    assert scrubber.scrub(f"x{KEY}y") == f"x{REDACTED}y"
    assert scrubber.scrub(json.dumps({"k": KEY})) == json.dumps({"k": REDACTED})
    assert scrubber.scrub(f"content type 'text/x; c={KEY[:30]}'") == (
        f"content type 'text/x; c={REDACTED}'"
    )
    assert scrubber.scrub(KEY[10:40]) == REDACTED  # a run from the middle
    assert scrubber.scrub("short is too short to scrub") == "short is too short to scrub"
    assert scrubber.scrub_value({"a": [KEY, (1, ValueError(KEY))], 2: None}) == {
        "a": [REDACTED, [1, REDACTED]],
        2: None,
    }
    scrubber.replace([TOKEN])  # a reload: the old key is no longer known
    assert scrubber.scrub(KEY) == KEY
    assert scrubber.scrub(TOKEN) == REDACTED


def test_secrets_come_from_every_place_the_config_names(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY)
    (tmp_path / "tokens").write_text(f"# comment\n{TOKEN}\n")
    (tmp_path / "hash").write_bytes(b"hash-secret-value\n")
    config = parse_config(
        {
            "services": {
                "s": {
                    "probes": {
                        "chat": {
                            "kind": "openai",
                            "model": "m",
                            "api_key_file": str(tmp_path / "key"),
                        },
                        "web": {
                            "kind": "http",
                            "url": "https://user:url-password-1@example.com/",
                            "headers": {
                                "Authorization": "Basic dXNlcjpiYXNpYy1wYXNzd29yZA==",
                                "X-Api-Key": "header-key-123",
                                "Accept": "text/html",
                            },
                        },
                    }
                }
            },
            "reports": {
                "tokens_file": str(tmp_path / "tokens"),
                "hash_secret_file": str(tmp_path / "hash"),
            },
        }
    )
    found = set(config_secrets(config, {}, b"\x01" * 32))
    assert {
        KEY,
        TOKEN,
        "hash-secret-value",
        "url-password-1",
        "basic-password",
        "header-key-123",
        "01" * 32,
    } <= found
    assert "text/html" not in found


@pytest.fixture
def log_to(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


@pytest.mark.parametrize("fmt", ["json", "logfmt", "console"])
def test_no_log_format_lets_a_secret_through(
    fmt: str, capsys: pytest.CaptureFixture[str], log_to: None
) -> None:
    scrubber = Scrubber()
    configure("debug", fmt, scrubber)  # type: ignore[arg-type]
    scrubber.replace([KEY])  # as the daemon does once it has read the config
    log = structlog.get_logger("test")
    log.warning("probe_down", detail=f"HTTP 400 {KEY}", nested={"a": [f'"{KEY}"']})
    try:
        raise RuntimeError(f"provider said {KEY}")
    except RuntimeError:
        log.exception("run_crashed")
    logging.getLogger("aiohttp.server").error("bad request %s", KEY)
    err = capsys.readouterr().err
    assert "run_crashed" in err and "probe_down" in err and "bad request" in err
    assert "Traceback" in err or fmt != "json" or "RuntimeError" in err
    assert not leaks(err), err


async def test_web_answers_and_errors_are_scrubbed(serve: Serve) -> None:
    scrubber = Scrubber([KEY])

    async def page(_r: web.Request) -> web.Response:
        return web.Response(text=f"<p>{KEY}</p>", content_type="text/html")

    async def document(_r: web.Request) -> web.Response:
        return web.json_response({"detail": f"echo {KEY}"})

    async def refuse(_r: web.Request) -> web.Response:
        raise web.HTTPBadRequest(text=f"bad token {KEY}")

    app = web.Application(middlewares=[scrubber.middleware()])
    app.router.add_get("/page", page)
    app.router.add_get("/json", document)
    app.router.add_get("/refuse", refuse)
    base = await serve(app)
    async with aiohttp.ClientSession() as session:
        for path, status in (("/page", 200), ("/json", 200), ("/refuse", 400)):
            async with session.get(base + path) as response:
                text = await response.text()
            assert response.status == status
            assert REDACTED in text and not leaks(text), (path, text)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.text(max_size=80),
    st.integers(min_value=0, max_value=len(KEY) - 12),
    st.integers(min_value=12, max_value=len(KEY)),
    st.text(max_size=80),
    st.sampled_from(["", '"', "\\", "'"]),
)
def test_no_run_of_twelve_characters_of_a_secret_survives(
    before: str, start: int, size: int, after: str, quote: str
) -> None:
    scrubber = Scrubber([KEY, TOKEN])
    piece = KEY[start : start + size]
    text = before + quote + piece + quote + after + TOKEN[:12]
    scrubbed = scrubber.scrub(text)
    assert not leaks(scrubbed), (text, scrubbed)
