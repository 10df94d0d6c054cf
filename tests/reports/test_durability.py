"""``kill -9`` mid-burst loses no acknowledged report: the daemon as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from ..daemon_process import free_port

SECRET = b"durability-secret"
TOKEN = "durability-token"
CONFIG = """
services:
  claude: {{}}
storage:
  path: {db}
reports:
  tokens_file: {tokens}
  hash_secret_file: {secret}
"""


def keyed(reporter: str) -> str:
    return hmac.new(SECRET, reporter.encode(), hashlib.sha256).hexdigest()[:32]


def start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).parent / "outagewatch"  # the venv's console script
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *(str(script), "run", "--config.file", str(config)),
                *("--web.listen-address", f"127.0.0.1:{port}", "--log.format", "logfmt"),
            ],
            stdout=out,
            stderr=out,
        )


async def wait_ready(http: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{base}/-/ready") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the daemon did not become ready")


@pytest.mark.integration
async def test_kill_9_mid_burst_loses_no_acknowledged_report(tmp_path: Path) -> None:
    db = tmp_path / "reports.db"
    (tmp_path / "tokens").write_text(TOKEN + "\n")
    (tmp_path / "secret").write_bytes(SECRET)
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.format(db=db, tokens=tmp_path / "tokens", secret=tmp_path / "secret"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    daemon = start(config, port, log)
    acked: list[str] = []
    in_flight_at_kill = 0
    in_flight = 0
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        try:
            await wait_ready(http, base)

            async def post(reporter: str) -> None:
                nonlocal in_flight
                in_flight += 1
                body = {"service": "claude", "problem": "app", "reporter": reporter}
                try:
                    async with http.post(f"{base}/api/v1/reports", json=body) as response:
                        if response.status == 202:
                            acked.append(reporter)
                except aiohttp.ClientError:
                    pass  # killed before it answered: not acknowledged, may or may not be stored
                finally:
                    in_flight -= 1

            tasks = []
            # Four requests a millisecond (more than it answers, so requests queue in the
            # daemon), for at most 30 s, until 1,000 were acknowledged (or the deadline, on
            # a machine too busy to get there).
            deadline = time.monotonic() + 30
            for n in range(0, 200_000, 4):
                tasks.extend(asyncio.create_task(post(f"user-{n + i}")) for i in range(4))
                await asyncio.sleep(0.001)
                if len(acked) >= 1000 or (time.monotonic() > deadline and acked):
                    break
            # kill -9 with requests outstanding: on a busy machine this client can be the
            # slow side, and the daemon may have answered all it was sent by now. A volley
            # of 50, given a moment to reach the daemon, leaves some unanswered.
            for volley in range(100):
                first = 1_000_000 + 50 * volley
                tasks.extend(asyncio.create_task(post(f"user-{first + i}")) for i in range(50))
                await asyncio.sleep(0.002)
                if in_flight:
                    break
            in_flight_at_kill = in_flight
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=5)
            await asyncio.gather(*tasks)
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=5)
        assert daemon.returncode == -signal.SIGKILL, log.read_text()
        assert in_flight_at_kill > 0  # the kill did land mid-burst

        # Restart on the same store: it opens (replaying the WAL) and knows the reports.
        restarted = start(config, port, log)
        try:
            await wait_ready(http, base)
            body = {"service": "claude", "problem": "app", "reporter": acked[0]}
            async with http.post(f"{base}/api/v1/reports", json=body) as response:
                assert response.status == 200  # a duplicate: the acknowledged one is there
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(timeout=10) == 0, log.read_text()

    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = {row[0] for row in conn.execute("SELECT reporter FROM reports")}
    missing = [r for r in acked if keyed(r) not in stored]
    assert missing == []
    assert len(acked) >= 1000
