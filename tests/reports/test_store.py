"""The SQLite store: schema versions, grouped commits, keyed state, pruning."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outagewatch.clock import FakeClock
from outagewatch.config import StorageConfig
from outagewatch.observations import Report
from outagewatch.store import SCHEMA_VERSION, Store, StoreClosed, StoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(tmp_path / "state" / "outagewatch.db", FakeClock())
    store.open()
    yield store
    store.close()


def report(reporter: str | None, time: float = 1_700_000_000.0, service: str = "claude") -> Report:
    return Report(service, "app", time, reporter=reporter)


async def test_new_store_is_wal_at_the_latest_schema(store: Store) -> None:
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_reopening_keeps_data_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    first = Store(path, FakeClock())
    first.open()
    await first.add_reports([report("a")], 3600)
    first.close()
    again = Store(path, FakeClock())
    again.open()
    try:
        history = await again.report_history(0, 1_700_000_100.0)
        assert history.hourly == [("claude", 1_700_000_000 // 3600, 1)]
    finally:
        again.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="upgrade outagewatch"):
        Store(path, FakeClock()).open()


async def test_concurrent_writes_share_commits(store: Store) -> None:
    verdicts = await asyncio.gather(
        *(store.add_reports([report(f"r{i}")], 3600) for i in range(500))
    )
    assert all(v == [True] for v in verdicts)
    assert store.commit_durations.count < 500  # grouped: fewer commits than requests
    history = await store.report_history(0, 1_700_000_100.0)
    assert history.hourly[0][2] == 500


async def test_duplicate_is_by_reporter_service_and_window(store: Store) -> None:
    t = 1_700_000_000.0
    assert await store.add_reports([report("a", t)], 3600) == [True]
    assert await store.add_reports([report("a", t + 3599)], 3600) == [False]
    assert await store.add_reports([report("a", t + 10, service="gemini")], 3600) == [True]
    assert await store.add_reports([report("a", t + 3601)], 3600) == [True]
    # Imported history has no reporter: never a duplicate.
    assert await store.add_reports([report(None, t), report(None, t)], 3600) == [True, True]


async def test_a_failing_job_rolls_back_only_itself(store: Store) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO state VALUES ('x', 'y', 'z', 0)")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        store.add_reports([report("a")], 3600),
        store._submit(broken),
        store.put_state("detector", "claude", {"level": 2}),
        return_exceptions=True,
    )
    assert results[0] == [True]
    assert isinstance(results[1], sqlite3.OperationalError)
    assert store.write_problem is None  # a job's own mistake says nothing about the disk
    assert await store.get_state("x") == {}
    assert await store.get_state("detector") == {"claude": {"level": 2}}


async def test_keyed_state_round_trips_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    store = Store(path, FakeClock())
    store.open()
    await store.put_state("budgets", "claude", {"spent": 1.5, "day": "2026-11-27"})
    await store.put_state("budgets", "claude", {"spent": 2.0, "day": "2026-11-27"})
    await store.put_state("budgets", "gemini", [1, 2])
    await store.delete_state("budgets", "gemini")
    store.close()
    with pytest.raises(StoreClosed):
        await store.get_state("budgets")
    again = Store(path, FakeClock())
    again.open()
    try:
        assert await again.get_state("budgets") == {"claude": {"spent": 2.0, "day": "2026-11-27"}}
    finally:
        again.close()


async def test_prune_deletes_only_reports_past_retention(store: Store) -> None:
    t = 1_700_000_000.0
    old = [report(None, t - 100 - i) for i in range(12_000)]  # more than one prune chunk
    await store.import_reports([*old, report(None, t), report(None, t + 1)])
    assert await store.prune_reports(t) == 12_000
    exported = list(store.iter_reports())
    assert [row[1] for row in exported] == [t, t + 1]


async def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "o.db", FakeClock())
    store.open()
    pending = [asyncio.ensure_future(store.add_reports([report(f"r{i}")], 60)) for i in range(50)]
    await asyncio.sleep(0)
    await asyncio.to_thread(store.close)
    assert [await p for p in pending] == [[True]] * 50
    assert not (tmp_path / "o.db-wal").exists() or (tmp_path / "o.db-wal").stat().st_size == 0


def test_default_path_is_the_systemd_state_directory() -> None:
    config = StorageConfig()
    environ = {"STATE_DIRECTORY": "/var/lib/outagewatch:/var/lib/other"}
    assert config.resolved_path(environ) == Path("/var/lib/outagewatch/outagewatch.db")
    assert config.resolved_path({}) == Path("outagewatch.db")
    assert StorageConfig(path=Path("/x/y.db")).resolved_path(environ) == Path("/x/y.db")
