"""/metrics speaks the format its Content-Type names: text 0.0.4, or OpenMetrics 1.0.0
when the scraper asks for it; a real Prometheus reads both."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from outagewatch.clock import FakeClock
from outagewatch.exposition import MetricsPage, wants_openmetrics
from outagewatch.lenses.probe import ProbeLens
from outagewatch.metrics import StateCollector
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from tests.conftest import Serve, require_tool
from tests.daemon_process import DaemonProcess, free_port

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 2.42 sends with every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics"),
    [
        (PROMETHEUS_ACCEPT, True),
        ("application/openmetrics-text; version=1.0.0", True),
        ("text/plain;version=0.0.4", False),
        ("", False),
        ("*/*", False),
        ("application/openmetrics-text;q=0, text/plain", False),
        ("text/plain;q=0.9, application/openmetrics-text;q=0.5", False),
        ("application/openmetrics-text;q=bogus", False),
    ],
)
def test_accept_header_negotiation(accept: str, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


def busy_page() -> tuple[Pipeline, MetricsPage]:
    pipeline = Pipeline(FakeClock())
    for probe, success, reason in (("api", True, None), ("web", False, "http_status")):
        pipeline.record_run(
            f"claude/{probe}",
            "http",
            0.2,
            [
                ProbeResult(
                    service="claude",
                    probe=probe,
                    kind="http",
                    time=1_700_000_123.25,
                    success=success,
                    reason=reason,
                    duration_seconds=0.123,
                    phases={"connect": 0.002},
                    status_code=200 if success else 503,
                )
            ],
        )
    pipeline.record_run("claude/odd", "http", 2.0, error_reason="timeout")
    registry = CollectorRegistry()
    registry.register(StateCollector(StatusQuery(pipeline.state), "1", "r", "3.11"))
    return pipeline, MetricsPage(StatusQuery(pipeline.state), registry)


def samples(families: object) -> set[tuple[str, str, float]]:
    return {
        (s.name, repr(sorted(s.labels.items())), s.value)
        for family in families  # type: ignore[attr-defined]
        for s in family.samples
    }


async def test_openmetrics_page_has_the_text_page_samples_and_ends_with_eof() -> None:
    _, page = busy_page()
    text = (await page.render()).decode()
    om = (await page.render(openmetrics=True)).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    assert "# EOF" not in text
    # The strict OpenMetrics parser reads it, with the same samples as the text page.
    om_families = list(parse_openmetrics(om))
    assert samples(om_families) == samples(parse_text(text))
    counters = {f.name for f in om_families if f.type == "counter"}
    assert {"outagewatch_probes", "outagewatch_probe_failures", "outagewatch_source_runs"} <= (
        counters
    )
    assert "# TYPE outagewatch_probes counter\n" in om
    assert "# TYPE outagewatch_probes_total counter\n" in text


async def test_both_formats_share_the_cached_target_lines() -> None:
    pipeline, page = busy_page()
    await page.render()
    om_before = await page.render(openmetrics=True)
    pipeline.state.lenses.of(ProbeLens).probes[
        "claude", "web"
    ].last = None  # unseen: no run counted it
    assert await page.render(openmetrics=True) == om_before


@pytest.fixture
async def daemon(tmp_path: Path, serve: Serve) -> AsyncIterator[DaemonProcess]:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    base = await serve(app)
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n  claude:\n    probes:\n      api:\n        kind: http\n"
        f"        url: {base}/ok\n        interval: 1s\n        timeout: 500ms\n"
    )
    process = DaemonProcess(config, tmp_path / "daemon.log")
    await process.start()
    yield process
    await process.stop()


async def scrape(url: str, accept: str | None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept is not None else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


async def test_the_daemon_labels_each_format_truly(daemon: DaemonProcess) -> None:
    await daemon.wait_for_metric('outagewatch_probe_success{probe="api"')
    content_type, text = await scrape(f"{daemon.url}/metrics", None)
    assert content_type == TEXT
    checked = await asyncio.to_thread(
        subprocess.run,
        [require_tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    content_type, om = await scrape(f"{daemon.url}/metrics", PROMETHEUS_ACCEPT)
    assert content_type == OPENMETRICS
    assert om.endswith("# EOF\n")
    assert {f.name for f in parse_openmetrics(om)} >= {"outagewatch_probes", "process_cpu_seconds"}


@pytest.fixture
async def accept_proxy(serve: Serve, daemon: DaemonProcess) -> AsyncIterator[dict[str, object]]:
    """Two loopback front doors to the daemon's /metrics: /as-is passes Prometheus'
    Accept through, /text asks for the text format; each records what it relayed."""
    relayed: dict[str, object] = {"as-is": set(), "text": set()}

    async def relay(request: web.Request) -> web.Response:
        mode = request.match_info["mode"]
        accept = request.headers.get("Accept", "") if mode == "as-is" else "text/plain"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{daemon.url}/metrics", headers={"Accept": accept}) as answer,
        ):
            body = await answer.read()
            content_type = answer.headers["Content-Type"]
        relayed[mode].add(content_type)  # type: ignore[attr-defined]
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/{mode}/metrics", relay)
    relayed["base"] = await serve(app)
    yield relayed


async def test_real_prometheus_reads_both_formats(
    daemon: DaemonProcess, accept_proxy: dict[str, object], tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus")
    proxy = str(accept_proxy["base"]).removeprefix("http://")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        + "".join(
            f"  - job_name: {mode}\n"
            f"    metrics_path: /{mode}/metrics\n"
            f"    static_configs: [{{targets: ['{proxy}']}}]\n"
            for mode in ("as-is", "text")
        )
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=log,
        )
    query = "count by (job) (outagewatch_probes_total) and on (job) (up == 1)"
    try:
        jobs: set[str] = set()
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while jobs != {"as-is", "text"}:
                await asyncio.sleep(0.5)
                try:
                    async with session.get(
                        f"http://127.0.0.1:{port}/api/v1/query", params={"query": query}
                    ) as response:
                        body = json.loads(await response.text())
                except aiohttp.ClientError:
                    continue
                jobs = {r["metric"]["job"] for r in body["data"]["result"]}
            async with session.get(f"http://127.0.0.1:{port}/api/v1/targets") as response:
                targets = json.loads(await response.text())["data"]["activeTargets"]
        assert {t["labels"]["job"]: t["lastError"] for t in targets} == {"as-is": "", "text": ""}
    finally:
        proc.terminate()
        await proc.wait()
    # Prometheus asked for OpenMetrics on its own and got it; the other job got text.
    assert accept_proxy["as-is"] == {OPENMETRICS}
    assert accept_proxy["text"] == {TEXT}
