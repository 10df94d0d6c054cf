"""The daemon runs chat probes with one spending ledger that survives reloads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp

from outagewatch.app import Daemon
from outagewatch.lenses.probe import ProbeLens

from .conftest import KNOWN_KEY, Reply, StartProvider, frames_of


async def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait, in bounded steps, until ``condition()`` holds; fail after ``seconds``."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def chat_config(base_url: str, key_file: Path, requests_per_day: int) -> str:
    return f"""
services:
  claude:
    probes:
      chat:
        kind: anthropic
        base_url: {base_url}
        model: claude-haiku-4-5
        api_key_file: {key_file}
        interval: 1s
        timeout: 1s
        max_chunk_gap: 500ms
        budget:
          requests_per_day: {requests_per_day}
"""


async def test_daemon_probes_reports_and_keeps_the_budget_across_a_reload(
    provider: StartProvider, tmp_path: Path, key_file: Path
) -> None:
    fake = await provider(Reply(frames_of("anthropic-sse-stream.txt")))
    config = tmp_path / "outagewatch.yml"
    config.write_text(chat_config(fake.base_url, key_file, requests_per_day=1))
    daemon = Daemon(config, "127.0.0.1:0", handle_signals=False)
    task = asyncio.create_task(daemon.run())
    try:
        await eventually(
            lambda: ("claude", "chat") in daemon.pipeline.state.lenses.of(ProbeLens).probes
        )
        assert (
            daemon.pipeline.state.lenses.of(ProbeLens).probes[("claude", "chat")].last_conclusive
            is True
        )
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{daemon.bound_port}"
            async with session.get(f"{url}/metrics") as response:
                metrics = await response.text()
            async with session.get(f"{url}/") as response:
                landing = await response.text()
        assert 'outagewatch_chat_outcome{outcome="ok",probe="chat",service="claude"} 1.0' in (
            metrics
        )
        assert 'outagewatch_chat_budget_exhausted{probe="chat",service="claude"} 1.0' in metrics
        assert KNOWN_KEY not in metrics + landing

        # A reload with a higher cap keeps today's request: one more run, then paused.
        config.write_text(chat_config(fake.base_url, key_file, requests_per_day=2))
        assert await daemon.reload()
        assert daemon.chat_budget.snapshot()["usage"][0]["requests"] == 1
        await eventually(lambda: len(fake.requests) >= 2)
        await asyncio.sleep(2.5)  # two more intervals: both paused
        assert len(fake.requests) == 2
        assert daemon.chat_budget.snapshot()["usage"][0]["requests"] == 2
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)
