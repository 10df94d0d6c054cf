"""Real daemons judging evidence (issue 18): no OK without a success, a blind daemon
reads unknown and says so once, a single provider's outage still counts.

A "black-holed" network: every probe and control target points at an unresolvable
``.invalid`` name or a closed loopback port. A single-provider outage: one loopback
endpoint answers 503 while the control targets answer 200.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Serve
from tests.daemon_process import DaemonProcess, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SERVICES = ("claude", "chatgpt", "gemini", "copilot")


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def state_key(service: str, state: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return ("outagewatch_disruption_state", frozenset({"service": service, "state": state}.items()))


def reason_key(service: str, reason: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"service": service, "reason": reason}
    return ("outagewatch_disruption_reason", frozenset(labels.items()))


HEALTHY = ("outagewatch_vantage_healthy", frozenset[tuple[str, str]]())


def control_up(control: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return ("outagewatch_vantage_control_up", frozenset({("control", control)}))


def states(samples: Samples) -> dict[str, str]:
    return {
        service: state
        for (name, labels), value in samples.items()
        if name == "outagewatch_disruption_state" and value == 1
        for service, state in [(dict(labels)["service"], dict(labels)["state"])]
    }


async def watch(
    daemon: DaemonProcess,
    condition: Callable[[Samples], bool],
    what: str,
    within: float = 15.0,
    seen: list[dict[str, str]] | None = None,
) -> Samples:
    """Scrape until ``condition`` holds (bounded); every scrape's states go to ``seen``."""
    deadline = time.monotonic() + within
    samples: Samples = {}
    while time.monotonic() < deadline:
        samples = parse(await daemon.metrics())
        if seen is not None:
            seen.append(states(samples))
        if condition(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}; states: {states(samples)}; {daemon.logs()[-3000:]}")


async def status_json(daemon: DaemonProcess) -> dict[str, Any]:
    status, text = await daemon.get("/api/v1/status")
    assert status == 200
    document: dict[str, Any] = json.loads(text)
    return document


def probe_block(url: str) -> str:
    return f"""
    probes:
      api: {{kind: http, url: "{url}", interval: 200ms, timeout: 150ms}}"""


def write_config(
    path: Path,
    urls: dict[str, str],
    controls: str,
    extra: str = "",
) -> None:
    services = "".join(f"\n  {name}:{probe_block(url)}" for name, url in urls.items())
    path.write_text(
        f"""
scheduler: {{jitter_ratio: 0}}
storage: {{path: state.db, state_save_interval: 200ms}}
disruption: {{probe_failure_runs: 2, recover_after: 300ms, evaluate_interval: 100ms{extra}}}
vantage:
  controls:{controls}
services:{services}
"""
    )


def endpoints() -> web.Application:
    """Loopback endpoints: /ok answers 200, /down 503, /control 200."""

    def answer(status: int, text: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(status=status, text=text)

        return handler

    app = web.Application()
    app.router.add_get("/ok", answer(200, "ok"))
    app.router.add_get("/down", answer(503, "overloaded"))
    app.router.add_get("/control", answer(200, "control"))
    return app


async def test_a_black_holed_daemon_reads_unknown_never_disrupted_and_says_why(
    tmp_path: Path,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    urls = {
        "claude": "http://api.claude.invalid/health",
        "chatgpt": "http://chatgpt.invalid/health",
        "gemini": f"{closed}/gemini",
        "copilot": f"{closed}/copilot",
    }
    controls = f"""
    resolver: {{kind: dns, host: control.invalid, interval: 200ms, timeout: 150ms}}
    reference: {{kind: http, url: "{closed}/reference", interval: 200ms, timeout: 150ms}}"""
    config = tmp_path / "outagewatch.yml"
    write_config(config, urls, controls)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        seen: list[dict[str, str]] = []
        blind = await watch(
            daemon,
            lambda s: (
                s.get(HEALTHY) == 0
                and all(s.get(reason_key(x, "vantage_unhealthy")) == 1 for x in SERVICES)
                and s.get(control_up("reference")) == 0
                and s.get(control_up("resolver")) == 0
            ),
            "the vantage point unhealthy, its controls failing, every service unknown for it",
            seen=seen,
        )
        # Probes fail twice every 400 ms: keep watching long enough for many such runs.
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            seen.append(states(parse(await daemon.metrics())))
            await asyncio.sleep(0.05)
        odd = [scrape for scrape in seen if set(scrape.values()) != {"unknown"}]
        assert not odd, odd
        ratio = ("outagewatch_vantage_services_failing_locally_ratio", frozenset[tuple[str, str]]())
        assert blind[ratio] == 1.0

        document = await status_json(daemon)
        for service in document["services"]:
            assert service["disruption"]["state"] == "unknown"
            assert service["disruption"]["reasons"] == ["vantage_unhealthy"]
        _, page = await daemon.get("/")
        assert "vantage unhealthy" in page
        assert "✓ OK" not in page
        # One line for the owner, not one per provider.
        assert daemon.logs().count('"event": "vantage_unhealthy"') == 1
    finally:
        assert await daemon.stop() == 0


async def test_one_provider_down_from_a_healthy_vantage_point_is_disrupted(
    serve: Serve, tmp_path: Path
) -> None:
    base = await serve(endpoints())
    closed = f"http://127.0.0.1:{free_port()}"
    urls = {
        "claude": f"{base}/down",  # the provider answers 503
        "chatgpt": f"{base}/ok",
        "gemini": f"{closed}/refused",  # refused by the provider: conclusive too
        "copilot": f"{base}/ok",
    }
    controls = f"""
    resolver: {{kind: dns, host: localhost, interval: 200ms, timeout: 150ms}}
    reference: {{kind: http, url: "{base}/control", interval: 200ms, timeout: 150ms}}"""
    config = tmp_path / "outagewatch.yml"
    write_config(config, urls, controls)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        seen: list[dict[str, str]] = []
        samples = await watch(
            daemon,
            lambda s: (
                states(s)
                == {"claude": "disrupted", "gemini": "disrupted", "chatgpt": "ok", "copilot": "ok"}
            ),
            "claude and gemini disrupted, the others ok",
            seen=seen,
        )
        assert samples[HEALTHY] == 1
        assert samples[reason_key("claude", "probes_failing")] == 1
        assert samples[reason_key("claude", "vantage_unhealthy")] == 0
        # No failing service was ever OK on the way: unknown, then disrupted.
        for service in ("claude", "gemini"):
            assert {scrape.get(service) for scrape in seen} <= {"unknown", "disrupted", None}
        events = (await status_json(daemon))["events"]
        texts = [e["text"] for e in events if e["service"] == "claude"]
        assert any(t.startswith("now disrupted (was unknown)") for t in texts), texts
        assert "vantage_unhealthy" not in daemon.logs()
    finally:
        assert await daemon.stop() == 0


async def test_a_restart_during_an_outage_never_shows_ok(serve: Serve, tmp_path: Path) -> None:
    base = await serve(endpoints())
    urls = {"claude": f"{base}/down"}
    config = tmp_path / "outagewatch.yml"
    # The stored state is fresh for 300 ms only: the second daemon starts later than that.
    write_config(config, urls, " {}", extra=", restored_fresh_for: 300ms")

    first = DaemonProcess(config, tmp_path / "first.log")
    await first.start()
    try:
        await watch(first, lambda s: states(s) == {"claude": "disrupted"}, "disrupted")
    finally:
        assert await first.stop() == 0
    await asyncio.sleep(0.5)

    second = DaemonProcess(config, tmp_path / "second.log")
    await second.start(wait_ready=False)
    seen: list[dict[str, str]] = []
    try:
        await second.wait_ready()
        await watch(
            second,
            lambda s: (
                states(s) == {"claude": "disrupted"}
                and s.get(reason_key("claude", "probes_failing")) == 1
            ),
            "disrupted from the second daemon's own probes",
            seen=seen,
        )
        assert all(scrape.get("claude") != "ok" for scrape in seen), seen
        history = (await status_json(second))["events"]
        assert not any("now ok" in e["text"] for e in history), history
    finally:
        assert await second.stop() == 0


async def test_an_official_page_failing_since_start_is_named_not_null(
    serve: Serve, tmp_path: Path
) -> None:
    base = await serve(endpoints())
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        f"""
scheduler: {{jitter_ratio: 0}}
storage: {{path: state.db}}
disruption: {{evaluate_interval: 100ms}}
services:
  claude:
    probes:
      api: {{kind: http, url: "{base}/ok", interval: 200ms, timeout: 150ms}}
    status_pages:
      main: {{kind: statuspage, url: "{base}/down", interval: 200ms, timeout: 150ms}}
"""
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        await watch(
            daemon,
            lambda s: s.get(reason_key("claude", "official_fetch_failing")) == 1,
            "unknown: official page fetch failing",
        )
        (claude,) = (await status_json(daemon))["services"]
        assert claude["disruption"]["state"] == "unknown"
        official = claude["official"]
        assert official is not None and official["level"] is None
        (fetch,) = official["fetch"]
        assert fetch["failing"] and fetch["failing_since"] and "http_status" in fetch["error"]
        (text,) = claude["disruption"]["reason_texts"]
        assert text.startswith("official page fetch failing since ")
        _, page = await daemon.get("/")
        assert "No official status page configured" not in page
        assert "Fetch failing" in page
    finally:
        assert await daemon.stop() == 0


async def test_an_intercepting_proxy_on_every_service_is_us_not_them(
    serve: Serve, ca: Any, tmp_path: Path
) -> None:
    # Every service answers with a certificate from a CA the daemon does not trust, as
    # behind a TLS-intercepting proxy; no control targets: the correlation alone judges.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    base = await serve(endpoints(), ssl_context=context)
    urls = {name: f"{base}/ok" for name in ("claude", "chatgpt", "gemini")}
    config = tmp_path / "outagewatch.yml"
    write_config(config, urls, " {}")
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        seen: list[dict[str, str]] = []
        samples = await watch(
            daemon,
            lambda s: (
                s.get(HEALTHY) == 0
                and all(s.get(reason_key(x, "vantage_unhealthy")) == 1 for x in urls)
            ),
            "an unhealthy vantage point from unknown-CA failures",
            seen=seen,
        )
        failures = (
            "outagewatch_probe_failures_total",
            frozenset({("service", "claude"), ("probe", "api")}),
        )
        assert samples[failures] >= 1
        reasons = (
            "outagewatch_probe_failure_reasons_total",
            frozenset({("service", "claude"), ("reason", "tls"), ("sub_reason", "unknown_ca")}),
        )
        assert samples[reasons] >= 1
        assert all(state == "unknown" for scrape in seen for state in scrape.values()), seen
    finally:
        assert await daemon.stop() == 0
