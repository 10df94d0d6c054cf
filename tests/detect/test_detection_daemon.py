"""The whole daemon: a failing endpoint flags the service before the official incident,
the lead shows on /metrics, recovery ends it, and a restart keeps what it knew."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from outagewatch.app import Daemon
from tests.conftest import Serve
from tests.daemon_process import DaemonProcess

from .world import World

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset({"service": "claude", **labels}.items()))


STATE = "outagewatch_disruption_state"
SINCE = key("outagewatch_disruption_since_timestamp_seconds")
LEAD = key("outagewatch_detection_lead_seconds")


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        return parse(await response.text())


async def until(
    port: int, condition: Callable[[Samples], bool], what: str, within: float = 10.0
) -> Samples:
    """Scrape until ``condition`` holds (bounded: fails after ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        samples = await scrape(port)
        if condition(samples):
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}; last scrape: {sorted(samples.items())[:80]}")


def in_state(state: str) -> Callable[[Samples], bool]:
    return lambda samples: samples.get(key(STATE, state=state)) == 1


def config_text(base: str, key_file: Path | None = None, recover_after: str = "300ms") -> str:
    chat = (
        f"""
      chat:
        kind: anthropic
        base_url: {base}/v1
        model: claude-haiku-4-5
        api_key_file: {key_file}
        interval: 500ms
        timeout: 400ms
        max_chunk_gap: 300ms
        budget: {{requests_per_day: 1000}}"""
        if key_file
        else ""
    )
    return f"""
scheduler: {{jitter_ratio: 0}}
storage: {{path: state.db, state_save_interval: 200ms}}
disruption: {{probe_failure_runs: 2, recover_after: {recover_after}, evaluate_interval: 100ms}}
services:
  claude:
    probes:
      api:
        kind: http
        url: {base}/health
        interval: 200ms
        timeout: 150ms{chat}
    status_pages:
      main:
        kind: statuspage
        url: {base}
        interval: 300ms
        timeout: 250ms
"""


async def test_failing_endpoint_is_flagged_before_the_official_incident_then_recovers(
    serve: Serve, tmp_path: Path
) -> None:
    world = World()
    base = await serve(world.app())
    config = tmp_path / "outagewatch.yml"
    config.write_text(config_text(base))
    daemon = Daemon(config, listen_address="127.0.0.1:0", handle_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(200):
            if daemon.is_ready() and daemon.bound_port:
                break
            await asyncio.sleep(0.02)
        port = daemon.bound_port
        assert port
        await until(port, in_state("ok"), "ok")

        world.health_status = 503
        flagged = await until(port, in_state("disrupted"), "disrupted")
        assert flagged[key("outagewatch_disruption_reason", reason="probes_failing")] == 1
        assert flagged[key("outagewatch_disruption_reason", reason="rank_surge")] == 0
        onset = flagged[SINCE]

        await asyncio.sleep(0.5)
        world.incident_start = time.time()
        with_lead = await until(port, lambda s: LEAD in s, "a detection lead")
        lead = with_lead[LEAD]
        assert lead > 0.4 and abs(lead - (world.incident_start - onset)) < 0.01
        assert with_lead[key("outagewatch_detection_incidents_total", outcome="early")] == 1

        world.health_status = 200
        world.incident_start = None
        recovered = await until(port, in_state("ok"), "recovery to ok")
        assert recovered[SINCE] > onset
        assert recovered[LEAD] == lead  # the last incident's lead stays

        events = daemon.pipeline.state.disruption.recent_events()
        assert [(e.previous, e.state) for e in events][-2:] == [
            ("ok", "disrupted"),
            ("unknown", "ok"),
        ]
        assert events[0].reasons == ()
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)


def stored_state(db: Path) -> dict[str, dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT namespace, key, value FROM state").fetchall()
    out: dict[str, dict[str, Any]] = {}
    for namespace, name, value in rows:
        out.setdefault(namespace, {})[name] = json.loads(value)
    return out


async def test_a_restart_keeps_detectors_disruption_incidents_and_budget(
    serve: Serve, tmp_path: Path
) -> None:
    world = World(health_status=503)
    base = await serve(world.app())
    key_file = tmp_path / "api-key"
    key_file.write_text("sk-test-restart\n")
    config = tmp_path / "outagewatch.yml"
    config.write_text(config_text(base, key_file, recover_after="1h"))
    db = tmp_path / "state.db"

    first = DaemonProcess(config, tmp_path / "first.log")
    await first.start()
    try:
        samples = await until(first.port, in_state("disrupted"), "disrupted")
        since = samples[SINCE]
        world.incident_start = time.time()
        await until(
            first.port,
            lambda s: LEAD in s and key("outagewatch_spike_baseline", signal="ttft") in s,
            "a lead and a TTFT detector",
        )
    finally:
        assert await first.stop() == 0
    before = stored_state(db)
    ttft_points = before["detectors"]["claude/ttft"]["detector"]["n"]
    requests = before["chat_budget"]["state"]["usage"][0]["requests"]
    assert ttft_points >= 1 and requests >= 1
    assert before["disruption"]["claude"]["since"] == since
    assert [row["id"] for row in before["incidents"]["state"]] == ["lead0test001"]
    lead = before["disruption"]["claude"]["leads"][0]["seconds"]
    assert lead > 0

    second = DaemonProcess(config, tmp_path / "second.log")
    await second.start()
    try:
        restarted = await scrape(second.port)
        assert restarted[key(STATE, state="disrupted")] == 1
        assert restarted[SINCE] == since
        assert restarted[LEAD] == lead
        # The first chat run after the restart counts on top of the stored usage.
        remaining = key(
            "outagewatch_chat_budget_remaining_ratio", probe="chat", resource="requests"
        )
        after = await until(second.port, lambda s: remaining in s, "the chat budget")
        assert after[remaining] <= 1 - (requests + 1) / 1000 + 1e-9
    finally:
        assert await second.stop() == 0
    later = stored_state(db)
    runs_since = later["chat_budget"]["state"]["usage"][0]["requests"] - requests
    assert later["detectors"]["claude/ttft"]["detector"]["n"] == ttft_points + runs_since
    assert later["disruption"]["claude"]["since"] == since
    # The incident came back from the store: the second daemon did not see it open anew.
    assert "status_incident_opened" in first.logs()
    assert "status_incident_opened" not in second.logs()
