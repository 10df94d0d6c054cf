"""Warm start against odd stored rows and damaged detector state: skipped, never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bench.fresh_install import history_rows, write_history_csv

from outagewatch.app import Daemon
from outagewatch.cli import main

# Rows another tool (or an older version) may have left: none may stop a replay.
ODD_ROWS = [
    ("not a time", "claude"),
    (0.0, "claude"),  # 1970: a day-long gap the replay skips, as the live path does
    (1e12, "claude"),  # year 33658: after every bucket the replay closes
    (-5.0, "claude"),
    (time.time() - 3600, b"\xff\xfe"),  # a blob where a service name belongs
    (time.time() - 3600, "removed"),
]


ODD_SQL = "INSERT INTO reports (time, service, problem, channel) VALUES (?, ?, 'app', 'x')"


@pytest.fixture
def setup(tmp_path: Path) -> Callable[[], Path]:
    def make() -> Path:
        config = tmp_path / "config.yml"
        config.write_text(f"services:\n  claude: {{}}\nstorage:\n  path: {tmp_path}/o.db\n")
        csv_file = tmp_path / "history.csv"
        write_history_csv(csv_file, history_rows(["claude"], time.time(), weeks=1, seed=3))
        assert main(["reports", "import", "--config.file", str(config), str(csv_file)]) == 0
        return config

    return make


def execute(db: Path, sql: str, rows: list[tuple[object, ...]] | None = None) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        if rows:
            conn.executemany(sql, rows)
        else:
            conn.execute(sql)


async def started(config: Path) -> tuple[Daemon, asyncio.Task[int]]:
    daemon = Daemon(config, "127.0.0.1:0", handle_signals=False)
    task = asyncio.create_task(daemon.run())
    for _ in range(500):
        if daemon.is_ready() or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    return daemon, task


async def stopped(daemon: Daemon, task: asyncio.Task[int]) -> None:
    daemon.stop()
    assert await asyncio.wait_for(task, 10) == 0


def test_odd_stored_rows_are_skipped_by_the_import_replay(
    setup: Callable[[], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = setup()
    capsys.readouterr()
    execute(
        tmp_path / "o.db",
        "INSERT INTO reports (time, service, problem, channel) VALUES (?, ?, 'app', 'x')",
        ODD_ROWS,
    )
    one = tmp_path / "one.csv"
    write_history_csv(one, [(time.time() - 60, "claude", "app")])
    assert main(["reports", "import", "--config.file", str(config), str(one)]) == 0
    out = capsys.readouterr().out
    assert "replayed" in out and "report detectors of 1 services" in out


async def test_damaged_detector_state_is_replayed_and_a_restart_keeps_it(
    setup: Callable[[], Path], tmp_path: Path
) -> None:
    config = await asyncio.to_thread(setup)
    db = tmp_path / "o.db"
    execute(db, ODD_SQL, [(0, "claude")])
    execute(db, "UPDATE state SET value = '{not json' WHERE namespace = 'detectors'")

    daemon, task = await started(config)
    try:
        signals = daemon.pipeline.state.signals
        running = daemon.running
        assert running is not None and running.keeper.failures["detectors"] == 1
        deadline = time.monotonic() + 20
        while signals.detectors.get(("claude", "reports")) is None or (
            signals.detectors[("claude", "reports")].n < 2000
        ):
            assert time.monotonic() < deadline, "never replayed"
            await asyncio.sleep(0.05)
        replayed = signals.detectors[("claude", "reports")]
    finally:
        await stopped(daemon, task)

    # Restarted: the saved detector is the replayed one; the 1970 row does not make the
    # start replay again into a new detector (it would start at the same point).
    again, task = await started(config)
    try:
        await asyncio.sleep(1.5)
        kept = again.pipeline.state.signals.detectors[("claude", "reports")]
        assert kept.first_ts == replayed.first_ts and kept.n >= replayed.n
        assert again.running is not None and again.running.keeper.failures["detectors"] == 0
    finally:
        await stopped(again, task)
