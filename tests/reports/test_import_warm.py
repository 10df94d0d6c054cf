"""``reports import`` replays the stored history through the report detectors and saves them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from bench.fresh_install import history_rows, write_history_csv

from outagewatch.cli import main
from outagewatch.clock import SystemClock
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import SignalDetectors
from outagewatch.store import Store, StoreLock


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        f"services:\n  claude: {{}}\n  gemini: {{}}\nstorage:\n  path: {tmp_path}/o.db\n"
    )
    return path


def detectors(db: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT key, value FROM state WHERE namespace = 'detectors'")
        return {key: json.loads(value) for key, value in rows}


def four_weeks(tmp_path: Path) -> Path:
    csv_file = tmp_path / "history.csv"
    write_history_csv(csv_file, history_rows(["claude"], time.time(), weeks=4, seed=5))
    return csv_file


def test_import_saves_report_detectors_fed_four_weeks(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = four_weeks(tmp_path)
    began = time.monotonic()
    assert main(["reports", "import", "--config.file", str(config), str(csv_file)]) == 0
    took = time.monotonic() - began
    out = capsys.readouterr().out
    assert "replayed" in out and "report detectors of 2 services" in out
    saved = detectors(tmp_path / "o.db")
    assert list(saved) == ["claude/reports"]  # gemini has no history: nothing to save
    state = saved["claude/reports"]
    assert state["spikes"] == 0  # history's own surges are not alerts
    assert 8000 <= state["detector"]["n"] <= 4 * 7 * 288
    assert state["last_time"] <= time.time()
    assert took < 60  # about 3 s on a quiet machine (docs/reports.md)


def test_import_keeps_other_signals_and_alert_counts(config: Path, tmp_path: Path) -> None:
    db = tmp_path / "o.db"
    signals = SignalDetectors(DetectionSettings())
    signals.configure(DetectionSettings(), ["claude"])
    now = time.time()
    signals.feed("claude", "latency", now - 60, 1.5)
    signals.report("claude", now - 900)
    signals.close(now - 300)
    signals.spikes_total[("claude", "reports")] = 4
    store = Store(db, SystemClock())
    store.open()
    try:

        async def put() -> None:
            for name, value in signals.snapshot().items():
                await store.put_state("detectors", name, value)

        asyncio.run(put())
    finally:
        store.close()
    before = detectors(db)
    assert main(["reports", "import", "--config.file", str(config), str(four_weeks(tmp_path))]) == 0
    after = detectors(db)
    assert after["claude/latency"] == before["claude/latency"]
    assert after["claude/reports"]["spikes"] == 4
    assert after["claude/reports"]["detector"]["n"] > 8000


def test_import_beside_a_running_daemon_leaves_the_replay_to_its_next_start(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = StoreLock(tmp_path / "o.db")
    lock.acquire()  # what a running daemon holds
    try:
        csv_file = four_weeks(tmp_path)
        assert main(["reports", "import", "--config.file", str(config), str(csv_file)]) == 0
    finally:
        lock.release()
    captured = capsys.readouterr()
    assert "imported" in captured.out
    assert "replays the history through its detectors at its next start" in captured.err
    assert detectors(tmp_path / "o.db") == {}
