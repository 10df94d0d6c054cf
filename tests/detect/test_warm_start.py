"""Issue 22: a fresh install with imported history detects a report surge from its first hour.

A real daemon (in process, with the injected clock: it moves with real time, and
the test jumps it 5 minutes so the surge's report bucket closes at once; probes
run against a healthy loopback endpoint), its history imported by
``outagewatch reports import``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from bench.fresh_install import history_rows, prepare_fresh_install, write_history_csv

from outagewatch.app import Daemon
from outagewatch.cli import _parser
from outagewatch.reports_cli import run as reports_run
from tests.conftest import Serve
from tests.daemon_process import DaemonProcess

TOKEN = "warm-token"
USUAL = 6.5  # reports per 5 minutes, averaged over the day
CONFIG = """
scheduler: {{jitter_ratio: 0}}
storage: {{path: {db}, state_save_interval: 200ms}}
disruption: {{evaluate_interval: 100ms}}
reports:
  tokens_file: {tokens}
services:
  claude:
    probes:
      api: {{kind: http, url: "{base}/health", interval: 200ms, timeout: 150ms}}
"""


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


class JumpClock:
    """Real time plus an offset the test moves forward (a jump past a bucket's end)."""

    def __init__(self, start: float) -> None:
        self.offset = start - time.time()  # start no later than now: see real_clock

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Running:
    daemon: Daemon
    clock: JumpClock
    base: str
    http: aiohttp.ClientSession

    async def status(self) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/api/v1/status") as response:
            assert response.status == 200
            document: dict[str, Any] = await response.json()
        return document["services"][0]

    async def until_state(self, wanted: Callable[[str], bool], within: float) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            service = await self.status()
            if wanted(service["disruption"]["state"]):
                return service
            await asyncio.sleep(0.05)
        raise AssertionError(f"state never as wanted; last: {service['disruption']}")

    async def surge(self, count: int) -> None:
        """``count`` reports from distinct reporters, now (a token client: no rate limit)."""
        body = [
            {"service": "claude", "problem": "api", "reporter": f"surge-{i}"} for i in range(count)
        ]
        for first in range(0, count, 20):
            async with self.http.post(
                f"{self.base}/api/v1/reports",
                json=body[first : first + 20],
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as response:
                assert response.status == 202, await response.text()


Start = Callable[[JumpClock], Awaitable[Running]]


@pytest.fixture
def config(tmp_path: Path) -> Callable[[str], Path]:
    def write(base: str) -> Path:
        (tmp_path / "tokens").write_text(f"{TOKEN}\n")
        path = tmp_path / "outagewatch.yml"
        path.write_text(CONFIG.format(db=tmp_path / "o.db", tokens=tmp_path / "tokens", base=base))
        return path

    return write


@pytest.fixture
async def start(serve: Serve, config: Callable[[str], Path]) -> AsyncIterator[Start]:
    app = web.Application()
    app.router.add_get("/health", health)
    path = config(await serve(app))
    started: list[tuple[Running, asyncio.Task[int]]] = []

    async def go(clock: JumpClock) -> Running:
        daemon = Daemon(path, "127.0.0.1:0", clock=clock, handle_signals=False)
        task = asyncio.create_task(daemon.run())
        for _ in range(500):
            if daemon.is_ready() or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        running = Running(
            daemon, clock, f"http://127.0.0.1:{daemon.bound_port}", aiohttp.ClientSession()
        )
        started.append((running, task))
        return running

    yield go
    for running, task in started:
        await running.http.close()
        running.daemon.stop()
        assert await asyncio.wait_for(task, 10) == 0


async def record_stalls(stalls: list[float]) -> None:
    """How late 5 ms sleeps wake: the event loop's stalls."""
    while True:
        began = time.monotonic()
        await asyncio.sleep(0.005)
        stalls.append(time.monotonic() - began - 0.005)


def import_history(config: Path, csv: Path, now: float) -> None:
    """Four weeks of history before ``now`` through ``outagewatch reports import``."""
    write_history_csv(csv, history_rows(["claude"], now, weeks=4, mean=USUAL, seed=22))
    args = _parser().parse_args(["reports", "import", "--config.file", str(config), str(csv)])
    assert reports_run(args) == 0


# Five times the usual rate, as in the issue (the usual being the day's average).
SURGE = math.ceil(5 * USUAL)


def real_clock() -> JumpClock:
    """Real time to start with: the scheduler plans probe runs on real time from it."""
    return JumpClock(time.time())


async def surge_then_close(running: Running) -> None:
    await running.surge(SURGE)
    running.clock.advance(300)  # the surge's bucket closes at the next detection pass


async def test_imported_history_detects_a_surge_from_the_first_bucket(
    start: Start, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await asyncio.to_thread(
        import_history, tmp_path / "outagewatch.yml", tmp_path / "history.csv", time.time()
    )
    assert "replayed" in capsys.readouterr().out
    running = await start(real_clock())
    before = await running.until_state(lambda s: s == "ok", 10)
    assert before["detectors"]["warming_up"] == []
    reports = before["detectors"]["signals"]["reports"]
    assert reports["warm"] and reports["points"] >= 8000  # four weeks of 5-minute counts
    assert reports["history_seconds"] >= 27 * 86400

    await surge_then_close(running)
    after = await running.until_state(lambda s: s not in ("ok", "unknown"), 10)
    assert "report_spike" in after["disruption"]["reasons"]


async def test_lost_detector_state_is_replayed_at_start(start: Start, tmp_path: Path) -> None:
    await asyncio.to_thread(
        import_history, tmp_path / "outagewatch.yml", tmp_path / "history.csv", time.time()
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "o.db")) as conn, conn:
        assert conn.execute("DELETE FROM state WHERE namespace = 'detectors'").rowcount == 1
    running = await start(real_clock())
    stalls: list[float] = []
    sampler = asyncio.create_task(record_stalls(stalls))
    deadline = time.monotonic() + 20
    while (await running.status())["detectors"]["warming_up"]:
        assert time.monotonic() < deadline, "the start-up replay never finished"
        await asyncio.sleep(0.05)
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    # Serving went on during the replay (it runs in a thread): no long stall of the loop.
    assert len(stalls) > 10 and max(stalls) < 0.05, f"longest stall {max(stalls):.3f} s"
    await running.until_state(lambda s: s == "ok", 10)

    await surge_then_close(running)
    after = await running.until_state(lambda s: s not in ("ok", "unknown"), 10)
    assert "report_spike" in after["disruption"]["reasons"]


async def test_without_history_the_status_says_warming_up(start: Start) -> None:
    running = await start(real_clock())
    before = await running.until_state(lambda s: s == "ok", 10)
    assert "reports" in before["detectors"]["warming_up"]
    assert before["detectors"]["signals"]["reports"]["points"] == 0
    async with running.http.get(f"{running.base}/") as response:
        page = await response.text()
    assert "(detectors warming up)" in page and "user reports: 0 s of history" in page

    await surge_then_close(running)
    await asyncio.sleep(1.0)  # ten detection passes
    after = await running.status()
    assert after["disruption"]["state"] in ("ok", "unknown")  # a cold detector cannot alert
    reports = after["detectors"]["signals"]["reports"]
    assert reports == {
        "warm": False,
        "points": 1,
        "history_seconds": 0,
        "needs_points": 24,
        "needs_seconds": 21600,
    }


async def process_status(daemon: DaemonProcess) -> dict[str, Any]:
    status, text = await daemon.get("/api/v1/status")
    assert status == 200
    service: dict[str, Any] = json.loads(text)["services"][0]
    return service


@pytest.mark.integration
async def test_a_daemon_process_replays_imported_history_or_says_it_is_cold(
    serve: Serve, config: Callable[[str], Path], tmp_path: Path
) -> None:
    app = web.Application()
    app.router.add_get("/health", health)
    path = config(await serve(app))
    csv_file = tmp_path / "history.csv"
    write_history_csv(csv_file, history_rows(["claude"], time.time(), weeks=4, seed=9))
    # A fresh install: history imported through the CLI, then the saved state lost.
    imported = await asyncio.to_thread(prepare_fresh_install, path, csv_file)
    assert "replayed" in imported.output
    with contextlib.closing(sqlite3.connect(tmp_path / "o.db")) as conn, conn:
        conn.execute("DELETE FROM state WHERE namespace = 'detectors'")

    warm = DaemonProcess(path, tmp_path / "warm.log")
    await warm.start()
    try:
        deadline = time.monotonic() + 20
        while (service := await process_status(warm))["detectors"]["warming_up"]:
            assert time.monotonic() < deadline, warm.logs()
            await asyncio.sleep(0.1)
        assert service["detectors"]["signals"]["reports"]["points"] > 8000
        _, page = await warm.get("/")
        assert "warming up" not in page
    finally:
        assert await warm.stop() == 0
    assert '"detectors_replayed"' in warm.logs()

    (tmp_path / "o.db").unlink()  # no history at all: the status page says so
    cold = DaemonProcess(path, tmp_path / "cold.log")
    await cold.start()
    try:
        service = await process_status(cold)
        assert service["detectors"]["warming_up"] == ["reports"]
        _, page = await cold.get("/")
        assert "(detectors warming up)" in page and "Spike detection warming up" in page
    finally:
        assert await cold.stop() == 0
    assert "detectors_replayed" not in cold.logs()
