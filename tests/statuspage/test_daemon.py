"""The whole daemon reading a local status page and exporting it on /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from outagewatch.app import Daemon
from tests.statuspage.conftest import Reply, StatusServer, claude_summary, open_incident

INTERVAL = 0.5
SUMMARY = "/api/v2/summary.json"


@pytest.fixture
async def daemon(server: StatusServer, tmp_path: Path) -> AsyncIterator[Daemon]:
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        f"""
scheduler: {{jitter_ratio: 0}}
services:
  claude:
    status_pages:
      main:
        kind: statuspage
        url: {server.url()}
        interval: {int(INTERVAL * 1000)}ms
        timeout: 400ms
        components: [claude.ai, Claude API]
"""
    )
    server.replies[SUMMARY] = Reply(claude_summary(status="operational"))
    daemon = Daemon(config, listen_address="127.0.0.1:0", handle_signals=False)
    task = asyncio.create_task(daemon.run())
    for _ in range(100):
        if daemon.is_ready() and daemon.bound_port:
            break
        await asyncio.sleep(0.02)
    yield daemon
    daemon.stop()
    await asyncio.wait_for(task, 10)


async def scrape(daemon: Daemon) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{daemon.bound_port}/metrics") as response,
    ):
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def component(status: str) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"service": "claude", "component": "claude.ai", "status": status}
    return ("outagewatch_status_component", frozenset(labels.items()))


LEVEL = ("outagewatch_status_level", frozenset({("service", "claude")}))


async def seconds_until(daemon: Daemon, key: tuple[str, frozenset[tuple[str, str]]]) -> float:
    """How long until the scrape shows ``key`` at 1 (bounded: fails after 5 s)."""
    start = time.monotonic()
    while time.monotonic() - start < 5:
        if (await scrape(daemon)).get(key) == 1:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} never became 1")


async def test_component_flip_reaches_metrics_within_one_interval(
    daemon: Daemon, server: StatusServer
) -> None:
    await seconds_until(daemon, component("operational"))

    server.replies[SUMMARY] = Reply(
        claude_summary(status="major_outage", indicator="none", incidents=[open_incident()])
    )
    # One interval plus the scrape poll and a run's own time.
    assert await seconds_until(daemon, component("major_outage")) < INTERVAL + 0.3
    samples = await scrape(daemon)
    assert samples[component("operational")] == 0
    assert samples[LEVEL] == 1  # the indicator says none; the open minor incident does not
    record = daemon.pipeline.state.incidents.get("claude", "main", "3wbkwvf5ypbk")
    assert record is not None and record.resolved is None

    server.replies[SUMMARY] = Reply(claude_summary(status="operational"))
    assert await seconds_until(daemon, component("operational")) < INTERVAL + 0.3
    assert (await scrape(daemon))[LEVEL] == 0
    assert record.resolved is not None


async def test_page_failure_keeps_the_last_state_and_stops_its_clock(
    daemon: Daemon, server: StatusServer
) -> None:
    await seconds_until(daemon, component("operational"))
    server.replies[SUMMARY] = Reply("<html>maintenance</html>", 200, content_type="text/html")
    failures = (
        "outagewatch_source_failures_total",
        frozenset({("source", "claude/status/main"), ("kind", "statuspage"), ("reason", "html")}),
    )
    age = ("outagewatch_status_last_success_timestamp_seconds", frozenset({("service", "claude")}))
    ages: dict[float, float] = {}
    for _ in range(100):
        samples = await scrape(daemon)
        ages.setdefault(samples.get(failures, 0), samples[age])
        if samples.get(failures, 0) >= 3:
            break
        await asyncio.sleep(0.05)
    # From the first failure on, the last good reading stays and its time stands still.
    assert max(ages) >= 3
    assert len({seen for count, seen in ages.items() if count >= 1}) == 1
    assert samples[component("operational")] == 1
