"""A daemon with the report intake on a loopback port, its store in a temp dir."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from outagewatch.app import Daemon
from outagewatch.clock import FakeClock

TOKEN = "test-token-1"
SECRET = b"test-hash-secret"

BASE_CONFIG = """
services:
  claude:
    display_name: Claude
    reports: {{public: true, rate_limit: 3, rate_limit_period: 60s}}
  chatgpt: {{}}
storage:
  path: {db}
reports:
  max_body_bytes: 1024
  max_batch: 5
{extra}
"""


@dataclass
class Running:
    daemon: Daemon
    base: str
    clock: FakeClock
    db: Path
    http: aiohttp.ClientSession
    task: asyncio.Task[int]

    async def stop(self) -> None:
        """Stop as SIGTERM does; the run must end cleanly (exit code 0)."""
        await self.http.close()
        self.daemon.stop()
        assert await asyncio.wait_for(self.task, 10) == 0

    def rows(self, sql: str = "SELECT service, problem, reporter FROM reports") -> list[tuple]:
        """Read the store as another process would (WAL: beside the writer)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)) as conn:
            return conn.execute(sql).fetchall()

    def sample(self, name: str, **labels: str) -> float | None:
        return self.daemon.registry.get_sample_value(name, labels)

    async def post(
        self,
        body: object,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        **kwargs: object,
    ) -> aiohttp.ClientResponse:
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await self.http.post(
            f"{self.base}/api/v1/reports", json=body, headers=headers, **kwargs
        )


Starter = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_daemon(tmp_path: Path) -> AsyncIterator[Starter]:
    """Start (and at the end stop) daemons; ``extra`` YAML is appended under ``reports:``."""
    started: list[Running] = []
    (tmp_path / "tokens").write_text(f"# machine clients\n{TOKEN}\n\nsecond-token\n")
    (tmp_path / "secret").write_bytes(SECRET + b"\n")

    async def start(
        extra: str = f"  hash_secret_file: {tmp_path / 'secret'}",
        clock: FakeClock | None = None,
        tokens_file: bool = True,
        db: Path | None = None,
    ) -> Running:
        config = tmp_path / "config.yml"
        db = db or tmp_path / "reports.db"
        if tokens_file:
            extra += f"\n  tokens_file: {tmp_path / 'tokens'}"
        config.write_text(BASE_CONFIG.format(db=db, extra=extra))
        clock = clock or FakeClock()
        daemon = Daemon(config, "127.0.0.1:0", clock=clock, handle_signals=False)
        task = asyncio.create_task(daemon.run())
        for _ in range(200):
            if daemon.is_ready() or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises what stopped it
        assert daemon.is_ready()
        base = f"http://127.0.0.1:{daemon.bound_port}"
        running = Running(daemon, base, clock, db, aiohttp.ClientSession(), task)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            await running.stop()
