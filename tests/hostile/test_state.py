"""Damaged state (issue 16, rows 7 and 16): each unreadable part starts empty and is
logged and counted, the daemon starts; a second daemon on one store is refused."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from outagewatch.clock import SystemClock
from outagewatch.store import Store, decode_state

from ..daemon_process import DaemonProcess

CONFIG = """\
services:
  claude:
    probes:
      api: {kind: http, url: "http://127.0.0.1:9/", interval: 1s, timeout: 500ms}
storage: {path: state.db, state_save_interval: 200ms}
"""

# case: (SQL that damages the store, the part that must start empty)
DAMAGE = {
    "detector-state-a-list": (
        "INSERT INTO state VALUES ('detectors', 'claude/failure_ratio', '[1, 2, 3]', 0)",
        "detectors",
    ),
    "detector-state-infinity": (
        "INSERT INTO state VALUES ('detectors', 'claude/latency', "
        """'{"detector": {"level": Infinity}, "spikes": 1, "last_time": null}', 0)""",
        "detectors",
    ),
    "detector-state-not-json": (
        "INSERT INTO state VALUES ('detectors', 'claude/reports', '{not json', 0)",
        "detectors",
    ),
    "disruption-a-list": (
        """INSERT INTO state VALUES ('disruption', 'claude', '["ok"]', 0)""",
        "disruption",
    ),
    "chat-budget-nan": (
        "INSERT INTO state VALUES ('chat_budget', 'state', 'NaN', 0)",
        "chat_budget",
    ),
    "incidents-a-mapping": (
        """INSERT INTO state VALUES ('incidents', 'state', '{"service": 1}', 0)""",
        "incidents",
    ),
    "ranks-a-string": (
        """INSERT INTO state VALUES ('appstore_ranks', 'state', '"text"', 0)""",
        "appstore_ranks",
    ),
    "hash-key-not-hex": (
        """INSERT INTO state VALUES ('reports', 'reporter_hash_key', '"not-hex-zz"', 0)""",
        "reporter_hash_key",
    ),
    "hash-key-short": (
        """INSERT INTO state VALUES ('reports', 'reporter_hash_key', '"00ff"', 0)""",
        "reporter_hash_key",
    ),
    "value-a-blob": (
        "INSERT INTO state VALUES ('disruption', 'claude', x'00ff', 0)",
        "disruption",
    ),
    "state-table-dropped": ("DROP TABLE state", "store_schema"),
}


def restore_failures(scrape: str, part: str) -> float:
    prefix = f'outagewatch_state_restore_failures_total{{part="{part}"}} '
    return next(
        float(line[len(prefix) :]) for line in scrape.splitlines() if line.startswith(prefix)
    )


@pytest.mark.parametrize("case", list(DAMAGE))
async def test_a_damaged_part_starts_empty_and_the_daemon_starts(tmp_path: Path, case: str) -> None:
    sql, part = DAMAGE[case]
    store = Store(tmp_path / "state.db", SystemClock())
    store.open()
    store.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute(sql)
    config = tmp_path / "outagewatch.yml"
    config.write_text(CONFIG)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        scrape = await daemon.metrics()
        assert restore_failures(scrape, part) >= 1, scrape
        # every other part is counted, at zero
        assert restore_failures(scrape, "incidents" if part != "incidents" else "detectors") == 0
        assert (await daemon.get("/api/v1/status"))[0] == 200
    finally:
        assert await daemon.stop() == 0
    events = [json.loads(line) for line in daemon.logs().splitlines() if line.startswith("{")]
    failed = [e for e in events if e["event"] == "state_restore_failed"]
    assert [e["part"] for e in failed] == [part], failed
    assert not any("Traceback" in json.dumps(e) for e in events)
    # The next save overwrote or deleted what was damaged.
    with sqlite3.connect(tmp_path / "state.db") as conn:
        rows = conn.execute("SELECT namespace, key, value FROM state").fetchall()
    for namespace, key, value in rows:
        assert isinstance(value, str), (namespace, key, value)
        decode_state(value)
    if part == "reporter_hash_key":
        stored = dict((k, v) for n, k, v in rows if n == "reports")
        assert len(bytes.fromhex(json.loads(stored["reporter_hash_key"]))) == 32


async def test_a_second_daemon_on_the_same_store_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "outagewatch.yml"
    config.write_text(CONFIG)
    first = DaemonProcess(config, tmp_path / "first.log")
    await first.start()
    try:
        second = DaemonProcess(config, tmp_path / "second.log")
        await second.start(wait_ready=False)
        assert second.proc is not None
        code = await asyncio.wait_for(second.proc.wait(), 30)
        assert code == 1, second.logs()
        assert (
            f"outagewatch: store {tmp_path / 'state.db'} is in use by another outagewatch "
            f"(pid {first.proc.pid if first.proc else '?'}, lock {tmp_path / 'state.db.lock'}); "
            "run one daemon per store file"
        ) in second.logs()
        assert (await first.get("/-/ready"))[0] == 200
    finally:
        assert await first.stop() == 0
    # The lock dies with its holder: the next daemon starts.
    third = DaemonProcess(config, tmp_path / "third.log")
    await third.start()
    assert await third.stop() == 0
