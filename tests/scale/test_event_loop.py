"""uvloop is the daemon's loop when installed; ``--event-loop asyncio`` opts out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon_process import free_port

CONFIG = """
services:
  svc:
    probes:
      web: {kind: http, url: "http://127.0.0.1:9/", interval: 60s}
"""


def started_loop(tmp_path: Path, *flags: str) -> str:
    """Start ``outagewatch run`` with ``flags``; the event loop its start-up line names."""
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    log = tmp_path / f"daemon{len(flags)}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outagewatch.cli",
                "run",
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{free_port()}",
                "--log.format",
                "json",
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            for line in log.read_text().splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if record.get("event") == "started":
                    return str(record["event_loop"])
            time.sleep(0.1)
        raise AssertionError(f"no start-up line: {log.read_text()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_uvloop_is_the_default_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    assert started_loop(tmp_path) == "uvloop"


def test_event_loop_asyncio_opts_out(tmp_path: Path) -> None:
    assert started_loop(tmp_path, "--event-loop", "asyncio") == "asyncio"
