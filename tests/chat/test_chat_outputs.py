"""Every outcome class through the framework: metrics, landing page, and no key anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from structlog.testing import capture_logs

from outagewatch.clock import SystemClock
from outagewatch.config import AnthropicProbe, OpenAIProbe, parse_config
from outagewatch.lenses.chat import ChatLens
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.chat.source import ApiKey, ChatProbeSource
from outagewatch.lenses.probe import ProbeLens
from outagewatch.lenses.registry import CATALOGUE, build_sources
from outagewatch.observations import CHAT_OUTCOMES
from outagewatch.pipeline import Pipeline
from outagewatch.scheduler import Scheduler
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients
from outagewatch.views import StatusQuery
from outagewatch.web.status import render_status_page
from tests.scrape import scrape

from ..conftest import FakeResolver, Serve, require_tool
from .conftest import (
    KNOWN_KEY,
    FakeProvider,
    Reply,
    StartProvider,
    fixture_bytes,
    frames_of,
)

ANTHROPIC = frames_of("anthropic-sse-stream.txt")
OPENAI = frames_of("openai-sse-stream.txt")


def echoing_error(kind: str, status: int) -> Reply:
    """An error whose message echoes the key, as some gateways do."""
    body = {"type": "error", "error": {"type": kind, "message": f"bad key {KNOWN_KEY}"}}
    return Reply([json.dumps(body).encode()], status=status, content_type="application/json")


# probe name -> (kind, reply, extra probe settings, expected outcome)
SCENARIOS: dict[str, tuple[str, Reply | None, dict[str, Any], str]] = {
    "ok": ("anthropic", Reply(ANTHROPIC), {}, "ok"),
    "overloaded": ("anthropic", echoing_error("overloaded_error", 529), {}, "overloaded"),
    "rate-limited": ("anthropic", echoing_error("rate_limit_error", 429), {}, "rate_limited"),
    "quota": (
        "openai",
        Reply(
            [fixture_bytes("openai-error-insufficient-quota-429.json")],
            status=429,
            content_type="application/json",
        ),
        {},
        "quota",
    ),
    "auth": ("anthropic", echoing_error("authentication_error", 401), {}, "auth"),
    "billing": ("anthropic", echoing_error("billing_error", 402), {}, "billing"),
    "server-error": ("anthropic", echoing_error("api_error", 500), {}, "server_error"),
    "timeout": (
        "openai",
        Reply(OPENAI, drip=0.05),
        {"timeout": "600ms", "max_chunk_gap": "500ms"},
        "timeout",
    ),
    "stalled": (
        "anthropic",
        Reply(ANTHROPIC[:4], hang_after=True),
        {"max_chunk_gap": "200ms"},
        "stalled",
    ),
    "truncated": ("openai", Reply(OPENAI[:10]), {}, "truncated"),
    "bad-response": (
        "openai",
        Reply([b"<html>" + KNOWN_KEY.encode() + b"</html>"], content_type="text/html"),
        {},
        "bad_response",
    ),
    "error-event": (
        "anthropic",
        Reply(
            [
                *ANTHROPIC[:4],
                b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                b'"message":"' + KNOWN_KEY.encode() + b'"}}\n\n',
            ]
        ),
        {},
        "overloaded",
    ),
    "connect": ("anthropic", None, {}, "connect"),
    "tls": ("anthropic", None, {}, "tls"),
    "dns": ("openai", None, {"base_url": "https://api.example.invalid/v1"}, "dns"),
}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_every_outcome_leaves_no_key_in_logs_metrics_pages_or_errors(
    provider: StartProvider,
    serve: Serve,
    ca: Any,
    hosts: dict[str, str],
    key_file: Path,
    tmp_path: Path,
) -> None:
    # A TLS server whose certificate the probe does not trust.
    tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("chat.test").configure_cert(tls_context)
    tls_base = await serve(web.Application(), ssl_context=tls_context)
    hosts["chat.test"] = "127.0.0.1"

    fakes: dict[str, FakeProvider] = {}
    probes: dict[str, Any] = {}
    for name, (kind, reply, extra, _) in SCENARIOS.items():
        if reply is not None:
            fakes[name] = await provider(reply)
            base = fakes[name].base_url
        elif name == "connect":
            base = f"http://127.0.0.1:{closed_port()}/v1"
        elif name == "tls":
            base = f"https://chat.test:{tls_base.rsplit(':', 1)[1]}/v1"
        else:
            base = extra["base_url"]
        probes[name] = {
            "kind": kind,
            "model": "m",
            "timeout": "3s",
            "max_chunk_gap": "2s",
            "api_key_file": str(key_file),
            **extra,
            "base_url": base,
        }
    # A probe whose budget is spent, and one whose key file is missing.
    probes["spent"] = {**probes["ok"], "budget": {"requests_per_day": 1}}
    probes["no-key"] = {**probes["ok"], "api_key_file": str(tmp_path / "absent")}
    config = parse_config({"services": {"claude": {"probes": probes}}})

    budget = ChatBudget()
    sources = build_sources(config, budget)
    assert all(isinstance(s, ChatProbeSource) for s in sources)
    buffer = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(buffer),
        processors=[structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
    )
    clients = HttpClients(lambda: FakeResolver(hosts))
    clock = SystemClock()
    pipeline = Pipeline(clock)

    def context(source: Any) -> RunContext:
        return RunContext(http=clients, clock=clock, log=log.bind(**source.log_context))

    scheduler = Scheduler(pipeline, context, clock, max_concurrency=32, jitter_ratio=0.0)
    try:
        with capture_logs() as pipeline_logs:
            for source in sources:
                await scheduler.run_once(source)
            spent = next(s for s in sources if s.key.endswith("/spent"))
            await scheduler.run_once(spent)  # paused: over its one request
    finally:
        await clients.close()

    outcomes = {}
    for name, (_, _, _, expected) in SCENARIOS.items():
        probe_state = pipeline.state.lenses.of(ProbeLens).probes[("claude", name)]
        assert probe_state.last is not None and probe_state.last.chat is not None
        outcomes[name] = probe_state.last.chat.outcome
        assert outcomes[name] == expected, (name, probe_state.last.detail)
    # `local` (this host out of file descriptors) needs a lowered RLIMIT_NOFILE: its own test.
    assert set(outcomes.values()) == set(CHAT_OUTCOMES) - {"local"}
    assert pipeline.state.runs["claude/probe/no-key"].failures == {"credential": 1}
    spent_budget = pipeline.state.lenses.of(ChatLens)[("claude", "spent")].budget
    assert spent_budget is not None and spent_budget.exhausted
    # The key was really sent: the test would see a leak.
    assert fakes["ok"].requests[0][0]["x-api-key"] == KNOWN_KEY

    registry = await scrape(pipeline.state)
    metrics = registry.text
    typed = StatusQuery(pipeline.state).document(config, clock.time())
    document = typed.json()
    landing = render_status_page(typed, clock.time(), 30) + json.dumps(document)
    # A run that observed nothing says why, next to the service's probes.
    (no_key,) = [f for f in document["services"][0]["failing_sources"] if "no-key" in f["source"]]
    assert no_key["error"].startswith("credential: ")
    assert "claude/probe/no-key: <span class=detail>credential: " in landing
    outputs = {
        "log": buffer.getvalue(),
        "pipeline log": repr(pipeline_logs),
        "metrics": metrics,
        "landing": landing,
        "state": repr(pipeline.state),
        "config": repr(config) + str(config.model_dump()),
        "run errors": repr({k: r.last_error for k, r in pipeline.state.runs.items()}),
        "key object": repr(ApiKey(KNOWN_KEY)) + str(ApiKey(KNOWN_KEY)) + f"{ApiKey(KNOWN_KEY)}",
    }
    for what, text in outputs.items():
        assert KNOWN_KEY not in text, f"the key leaked into the {what}"
        assert KNOWN_KEY[8:24] not in text, f"part of the key leaked into the {what}"

    # The metrics say what happened.
    assert (
        registry.get_sample_value(
            "outagewatch_chat_outcome",
            {"service": "claude", "probe": "stalled", "outcome": "stalled"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "outagewatch_chat_outcome", {"service": "claude", "probe": "stalled", "outcome": "ok"}
        )
        == 0
    )
    for probe in ("overloaded", "tls"):
        failures = {"service": "claude", "probe": probe}
        assert registry.get_sample_value("outagewatch_probe_failures_total", failures) == 1
    # The reasons are the service's: every scenario ending in that class counts.
    for reason, sub_reason in (("overloaded", ""), ("tls", "unknown_ca")):
        labels = {"service": "claude", "reason": reason, "sub_reason": sub_reason}
        count = list(outcomes.values()).count(reason)
        assert registry.get_sample_value("outagewatch_probe_failure_reasons_total", labels) == count
    # Runs by outcome: every class of a probe from its first run, so a rate sees the first.
    runs = {"service": "claude", "probe": "overloaded"}
    assert (
        registry.get_sample_value("outagewatch_chat_runs_total", {**runs, "outcome": "overloaded"})
        == 1
    )
    assert registry.get_sample_value("outagewatch_chat_runs_total", {**runs, "outcome": "ok"}) == 0
    assert (
        registry.get_sample_value(
            "outagewatch_chat_runs_total", {"service": "claude", "probe": "ok", "outcome": "ok"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "outagewatch_chat_ttft_seconds_count", {"service": "claude", "probe": "ok"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "outagewatch_chat_budget_exhausted", {"service": "claude", "probe": "spent"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "outagewatch_chat_budget_remaining_ratio",
            {"service": "claude", "probe": "ok", "resource": "requests"},
        )
        == 1 - 1 / 500
    )
    assert (
        registry.get_sample_value(
            "outagewatch_source_failures_total",
            {"source": "claude/probe/no-key", "kind": "anthropic", "reason": "credential"},
        )
        == 1
    )
    # Every emitted family is catalogued, and promtool accepts the scrape.
    for family in registry.collect():
        assert family.name in CATALOGUE or f"{family.name}_total" in CATALOGUE
    promtool = require_tool("promtool")
    check = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=metrics,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_config_models_hold_no_key(key_file: Path) -> None:
    for model in (AnthropicProbe, OpenAIProbe):
        probe = model.model_validate({"model": "m", "api_key_file": str(key_file)})
        assert KNOWN_KEY not in repr(probe) + json.dumps(probe.model_dump(mode="json"))
