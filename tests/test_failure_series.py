"""The failure series (issue 20): a probe's failed runs without reasons, the reasons
per service, and each chat probe's runs by outcome.

The reasons counter is the service's: it keeps counting (never drops) when one of
the service's probes leaves the config, and leaves /metrics with the service.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from outagewatch.clock import FakeClock
from outagewatch.lenses.chat import ChatLens
from outagewatch.observations import CHAT_OUTCOMES, ChatStats, ProbeResult
from outagewatch.pipeline import Pipeline
from tests.conftest import Serve
from tests.daemon_process import DaemonProcess, free_port
from tests.scrape import scrape


def failed(service: str, probe: str, reason: str, sub_reason: str | None = None) -> ProbeResult:
    return ProbeResult(service, probe, "http", 1.0, False, 0.01, reason, sub_reason=sub_reason)


def chat_run(probe: str, outcome: str) -> ProbeResult:
    return ProbeResult(
        "claude",
        probe,
        "anthropic",
        1.0,
        outcome == "ok",
        0.5,
        None if outcome == "ok" else outcome,
        chat=ChatStats(outcome=outcome),
    )


def reasons_of(page: str, service: str) -> dict[tuple[str, str], float]:
    """(reason, sub_reason) -> count of the service's reasons counter on a text page."""
    found = {}
    for line in page.splitlines():
        if line.startswith("outagewatch_probe_failure_reasons_total{"):
            labels = dict(
                part.split("=", 1)
                for part in line[line.index("{") + 1 : line.index("}")].split(",")
            )
            values = {k: v.strip('"') for k, v in labels.items()}
            if values["service"] == service:
                found[values["reason"], values["sub_reason"]] = float(line.rsplit(" ", 1)[1])
    return found


async def test_a_probe_counts_its_failures_and_its_service_their_reasons() -> None:
    pipeline = Pipeline(FakeClock())
    pipeline.ingest(
        [
            failed("claude", "api", "connect", "refused"),
            failed("claude", "api", "timeout"),
            failed("claude", "web", "connect", "refused"),
            failed("grok", "api", "tls", "expired"),
            ProbeResult("claude", "ok", "http", 1.0, True, 0.01, status_code=200),
        ]
    )
    page = await scrape(pipeline.state)
    assert (
        page.get_sample_value(
            "outagewatch_probe_failures_total", {"service": "claude", "probe": "api"}
        )
        == 2
    )
    assert (
        page.get_sample_value(
            "outagewatch_probe_failures_total", {"service": "claude", "probe": "web"}
        )
        == 1
    )
    # A probe that never failed has no failures line (one line less on most probes).
    assert 'outagewatch_probe_failures_total{probe="ok"' not in page.text
    assert reasons_of(page.text, "claude") == {("connect", "refused"): 2, ("timeout", ""): 1}
    assert reasons_of(page.text, "grok") == {("tls", "expired"): 1}
    # One line per probe that failed, whatever its reasons: no reason label per probe.
    lines = [line for line in page.text.splitlines() if line.startswith("outagewatch_probe_fail")]
    assert len(lines) == 3 + 3


async def test_the_reasons_outlive_a_removed_probe_and_leave_with_the_service() -> None:
    pipeline = Pipeline(FakeClock())
    pipeline.ingest(
        [
            failed("claude", "api", "connect", "refused"),
            failed("claude", "web", "dns", "nxdomain"),
            failed("grok", "api", "timeout"),
        ]
    )
    # Reload: claude's api probe goes, claude stays; grok goes entirely.
    pipeline.retain({"claude/probe/web"}, {("claude", "web")})
    page = await scrape(pipeline.state)
    assert reasons_of(page.text, "claude") == {("connect", "refused"): 1, ("dns", "nxdomain"): 1}
    assert 'probe="api",service="claude"' not in page.text
    assert reasons_of(page.text, "grok") == {}
    # Counting goes on from where it was.
    pipeline.ingest([failed("claude", "web", "connect", "refused")])
    page = await scrape(pipeline.state)
    assert reasons_of(page.text, "claude") == {("connect", "refused"): 2, ("dns", "nxdomain"): 1}


async def test_a_chat_probe_counts_its_runs_by_outcome_from_its_first_run() -> None:
    pipeline = Pipeline(FakeClock())
    pipeline.ingest([chat_run("chat", o) for o in ("ok", "overloaded", "overloaded", "quota")])
    pipeline.ingest([chat_run("other", "ok")])
    page = await scrape(pipeline.state)
    runs = {
        outcome: page.get_sample_value(
            "outagewatch_chat_runs_total",
            {"service": "claude", "probe": "chat", "outcome": outcome},
        )
        for outcome in CHAT_OUTCOMES
    }
    assert runs == {o: {"ok": 1, "overloaded": 2, "quota": 1}.get(o, 0) for o in CHAT_OUTCOMES}
    other = {"service": "claude", "probe": "other", "outcome": "overloaded"}
    assert page.get_sample_value("outagewatch_chat_runs_total", other) == 0
    # The probe's own runs stay per probe: they leave with it.
    pipeline.retain({"claude/probe/other"}, {("claude", "other")})
    chats = pipeline.state.lenses.of(ChatLens)
    assert set(chats) == {("claude", "other")}
    page = await scrape(pipeline.state)
    assert 'outagewatch_chat_runs_total{outcome="ok",probe="chat"' not in page.text
    assert reasons_of(page.text, "claude") == {("overloaded", ""): 2, ("quota", ""): 1}


async def _scrape_until(
    daemon: DaemonProcess, done: Callable[[str], object], within: float = 15.0
) -> str:
    deadline = time.monotonic() + within
    while True:
        text = await daemon.metrics()
        if done(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.1)


async def test_a_reload_keeps_the_reasons_of_a_service_that_stays(
    tmp_path: Path, serve: Serve
) -> None:
    """The real daemon: SIGHUP drops a failing probe of claude and the service grok."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    base = await serve(app)
    refused = f"http://127.0.0.1:{free_port()}/"

    def probe(name: str, url: str) -> str:
        return (
            f"      {name}:\n        kind: http\n        url: {url}\n"
            "        interval: 200ms\n        timeout: 150ms\n"
        )

    def service(name: str, *probes: str) -> str:
        return f"  {name}:\n    probes:\n" + "".join(probes)

    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n"
        + service("claude", probe("down", refused), probe("up", f"{base}/"))
        + service("grok", probe("down", refused))
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        before = await _scrape_until(
            daemon,
            lambda text: (
                reasons_of(text, "claude").get(("connect", "refused"), 0) >= 3
                and reasons_of(text, "grok")
            ),
        )
        counted = reasons_of(before, "claude")[("connect", "refused")]
        assert 'outagewatch_probe_failures_total{probe="down",service="claude"}' in before
        config.write_text("services:\n" + service("claude", probe("up", f"{base}/")))
        daemon.signal(signal.SIGHUP)
        after = await _scrape_until(daemon, lambda text: 'service="grok"' not in text)
        assert 'service="grok"' not in after
        assert 'probe="down",service="claude"' not in after
        # The service's reasons keep what the removed probe counted: monotonic.
        assert reasons_of(after, "claude")[("connect", "refused")] >= counted
    finally:
        assert await daemon.stop() == 0
