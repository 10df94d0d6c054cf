"""The SQLite store: users' reports now; detector state, budgets, incidents later.

One writer thread owns the connection. Callers on the event loop queue jobs
and await them; the thread runs every queued job in one transaction and
commits once, so many requests share one fsync (group commit). A job's future
resolves only after that commit, which is what makes a 202 durable.

Durability: the database runs in WAL mode. ``synchronous=FULL`` (the default)
fsyncs the WAL on every commit, so an acknowledged report survives both
``kill -9`` and power loss. ``synchronous=NORMAL`` fsyncs only at checkpoints:
a commit is in the OS page cache when acknowledged, so it survives a process
crash but the last commits may be lost on power loss. Group commit keeps FULL
affordable, so it is the default.

A write that fails (disk full, I/O error) answers its caller with StoreError
and sets ``write_problem`` until a later write commits: readiness reports it,
and the log gets one line per ``FAILURE_LOG_INTERVAL`` with the count, not one
per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from outagewatch.clock import Clock
from outagewatch.histogram import Histogram
from outagewatch.observations import Report

T = TypeVar("T")

# Transaction latencies: from a page-cache commit to a slow disk's fsync.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# At most this many jobs share one transaction, so one commit stays short.
MAX_JOBS_PER_COMMIT = 2000
PRUNE_CHUNK = 5000
# While writes keep failing, at most one log line per this many seconds.
FAILURE_LOG_INTERVAL = 60.0
# While writes fail, readiness checks try a small write at most this often.
WRITE_PROBE_INTERVAL = 5.0

# Each entry moves the schema one version up; user_version records where a file is.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE reports (
        id INTEGER PRIMARY KEY,
        time REAL NOT NULL,
        service TEXT NOT NULL,
        problem TEXT NOT NULL,
        reporter TEXT,
        country TEXT,
        comment TEXT,
        channel TEXT NOT NULL
    );
    CREATE INDEX reports_by_time ON reports (time);
    CREATE INDEX reports_by_reporter ON reports (service, reporter, time)
        WHERE reporter IS NOT NULL;
    CREATE TABLE state (
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (namespace, key)
    ) WITHOUT ROWID;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
_RECENT_BY_REPORTER = (
    "SELECT 1 FROM reports WHERE service = ? AND reporter = ? AND time > ? LIMIT 1"
)


class StoreError(Exception):
    """The store cannot be opened or used."""


class StoreClosed(StoreError):
    """A job was submitted after ``close``."""


class StoreLocked(StoreError):
    """Another process holds the store's lock file."""


def decode_state(text: str) -> Any:
    """A stored state value; ValueError for text that is not JSON or holds NaN/Infinity."""

    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not a finite number")

    return json.loads(text, parse_constant=reject)


class StoreLock:
    """An advisory lock on ``<store>.lock``, held for the life of a daemon.

    Two daemons on one file would each count only their own reports and overwrite
    each other's state; the second is refused. ``flock`` locks die with the
    process, so a crash leaves nothing to clean up.
    """

    def __init__(self, store_path: Path) -> None:
        self.path = Path(f"{store_path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreLocked naming the holder. Blocking (briefly)."""
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            lock = self.path.absolute()
            raise StoreLocked(
                f"store {lock.with_suffix('')} is in use by another outagewatch "
                f"(pid {holder}, lock {lock}); run one daemon per store file"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


@dataclass(frozen=True, slots=True)
class ReportHistory:
    """What the baseline needs from the store at start-up."""

    history_start: float
    hourly: list[tuple[str, int, int]]  # service, hour index (epoch hours), count
    recent: list[tuple[str, int, int]]  # service, 10-second bucket index, count


# SQLite errors that say the database cannot be written now (disk full, I/O,
# read-only, locked), as opposed to a job's own mistake (no such table ...).
_WRITE_FAILURES = (
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
)


def _is_write_failure(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", None) or ""
    return name.startswith(_WRITE_FAILURES) or "disk is full" in str(exc)


_Job = tuple[Callable[[sqlite3.Connection], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_STOP = object()


class Store:
    """SQLite in WAL mode behind one writer thread with grouped commits."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        synchronous: str = "full",
        log: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._log = log or structlog.get_logger("outagewatch.store")
        self._synchronous = synchronous.upper()
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        # Tables or indexes found missing and created again, empty, by ``open``.
        self.repaired: list[str] = []
        # Updated on the event loop (in _settle), read there by the collector.
        self.commit_durations = Histogram(COMMIT_BUCKETS)
        self.commit_failures = 0
        # Why writes fail now (None while they work); refused writes in all, and
        # since the last log line.
        self.write_problem: str | None = None
        self._failed_writes = 0
        self._unlogged_failures = 0
        self._failure_logged_at = 0.0
        self._probing = False
        self._probed_at = -math.inf

    # -- lifecycle -------------------------------------------------------

    def open(self) -> None:
        """Open (creating if needed), migrate, and start the writer thread. Blocking."""
        try:
            if self.path.parent != Path():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"store {self.path}: cannot use WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=5000")
            # Reporter hashes land at random in their index: keep its pages in memory (32 MiB).
            conn.execute("PRAGMA cache_size=-32768")
            self._migrate(conn)
            self.repaired = self._repair(conn)
            now = self._clock.time()
            conn.execute(
                "INSERT OR IGNORE INTO state VALUES ('store', 'created', ?, ?)",
                (json.dumps(now), now),
            )
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"store {self.path}: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        self._conn = conn
        self._thread = threading.Thread(target=self._write_loop, name="store-writer", daemon=True)
        self._thread.start()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}; this outagewatch "
                f"knows up to {SCHEMA_VERSION}: upgrade outagewatch"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE; {MIGRATIONS[number - 1]}; PRAGMA user_version={number}; "
                    "COMMIT;"
                )
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _repair(self, conn: sqlite3.Connection) -> list[str]:
        """Create again any table or index of the schema that is missing (dropped by
        hand or by damage), empty; returns their names."""
        reference = sqlite3.connect(":memory:")
        try:
            for migration in MIGRATIONS:
                reference.executescript(migration)
            wanted = reference.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                "ORDER BY type = 'index'"  # tables first
            ).fetchall()
        finally:
            reference.close()
        present = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        missing = [(name, sql) for _type, name, sql in wanted if name not in present]
        for _name, sql in missing:
            conn.execute(sql)
        return [name for name, _sql in missing]

    def close(self) -> None:
        """Finish every queued job, checkpoint the WAL, close. Blocking; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
        if self._conn is not None:
            # On failure the WAL is still valid: the next open replays it.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None

    # -- the writer thread -----------------------------------------------

    def _write_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Job] = [first]  # type: ignore[list-item]
            while len(batch) < MAX_JOBS_PER_COMMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run every job in one transaction; a failing job rolls back only itself."""
        started = time.perf_counter()
        changes = conn.total_changes
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        write_error: str | None = None  # a failed write: disk full, I/O error
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future, _loop in batch:
                conn.execute("SAVEPOINT job")
                try:
                    result = fn(conn)
                except Exception as exc:
                    error: Exception = exc
                    if isinstance(exc, sqlite3.Error) and _is_write_failure(exc):
                        write_error = str(exc)
                        error = StoreError(f"write failed: {exc}")
                    # SQLITE_FULL may already have rolled back the whole transaction:
                    # then ROLLBACK TO fails and the except below answers every job.
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((future, None, error))
                else:
                    outcomes.append((future, result, None))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            write_error = write_error or str(exc)
            error = StoreError(f"commit failed: {write_error}")
            outcomes = [(future, None, error) for _fn, future, _loop in batch]
            duration = None
        else:
            duration = time.perf_counter() - started
        wrote = duration is not None and conn.total_changes > changes
        for loop in {job_loop for _fn, _future, job_loop in batch}:
            mine = [o for o, job in zip(outcomes, batch, strict=True) if job[2] is loop]
            # A closed loop has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle, mine, duration, write_error, wrote)

    def _settle(
        self,
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
        duration: float | None,
        write_error: str | None = None,
        wrote: bool = False,
    ) -> None:
        if duration is None:
            self.commit_failures += 1
        else:
            self.commit_durations.observe(duration)
        if write_error is not None:
            failed = sum(isinstance(error, StoreError) for _future, _result, error in outcomes)
            self._write_failed(write_error, failed)
        elif wrote and self.write_problem is not None:
            self._log.info("store_writes_recovered", failed_writes=self._failed_writes)
            self.write_problem = None
            self._failed_writes = self._unlogged_failures = 0
        for future, result, error in outcomes:
            if future.done():
                continue  # the caller gave up (cancelled)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    def _write_failed(self, error: str, count: int) -> None:
        """Remember why writes fail; log the first failure, then one line per interval
        with the count of writes (jobs, requests) refused since the last line."""
        now = self._clock.monotonic()
        self._failed_writes += count
        self._unlogged_failures += count
        first = self.write_problem is None
        self.write_problem = f"store writes fail: {error}"
        if first or now - self._failure_logged_at >= FAILURE_LOG_INTERVAL:
            self._log.error(
                "store_write_failed",
                error=error,
                failures=self._unlogged_failures,
                path=str(self.path),
            )
            self._failure_logged_at = now
            self._unlogged_failures = 0

    def probe_writes(self) -> None:
        """While writes fail, queue one small write (at most every WRITE_PROBE_INTERVAL).

        Readiness calls this, so a freed disk is noticed without waiting for a report.
        """
        now = self._clock.monotonic()
        if self.write_problem is None or self._probing:
            return
        if now - self._probed_at < WRITE_PROBE_INTERVAL:
            return
        stamp = self._clock.time()

        def probe(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO state VALUES ('store', 'write_probe', ?, ?) ON CONFLICT "
                "(namespace, key) DO UPDATE SET value = excluded.value, updated = excluded.updated",
                (json.dumps(stamp), stamp),
            )

        try:
            future = self._submit(probe)
        except StoreClosed:
            return
        self._probing, self._probed_at = True, now
        future.add_done_callback(self._probed)

    def _probed(self, future: asyncio.Future[None]) -> None:
        self._probing = False
        if not future.cancelled():
            future.exception()  # retrieved: the failure is already counted and logged

    def _submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._closed or self._thread is None:
            raise StoreClosed("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
        return future

    # -- reports ---------------------------------------------------------

    async def add_reports(self, reports: Sequence[Report], window: float) -> list[bool]:
        """Store reports that count; True for each stored, False for a duplicate.

        A report is a duplicate when its reporter already has one for the same
        service within ``window`` seconds. Resolves only after the commit.
        """

        def add(conn: sqlite3.Connection) -> list[bool]:
            verdicts = []
            for report in reports:
                if (
                    report.reporter is not None
                    and conn.execute(
                        _RECENT_BY_REPORTER, (report.service, report.reporter, report.time - window)
                    ).fetchone()
                ):
                    verdicts.append(False)
                    continue
                conn.execute(
                    "INSERT INTO reports (time, service, problem, reporter, country, comment, "
                    "channel) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        report.time,
                        report.service,
                        report.problem,
                        report.reporter,
                        report.country,
                        report.comment,
                        report.channel,
                    ),
                )
                verdicts.append(True)
            return verdicts

        return await self._submit(add)

    async def import_reports(self, reports: Sequence[Report]) -> int:
        """Insert history as is (no duplicate check); returns how many."""

        def insert(conn: sqlite3.Connection) -> int:
            conn.executemany(
                "INSERT INTO reports (time, service, problem, reporter, country, comment, "
                "channel) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (r.time, r.service, r.problem, r.reporter, r.country, r.comment, r.channel)
                    for r in reports
                ),
            )
            return len(reports)

        return await self._submit(insert)

    async def report_history(self, since: float, now: float) -> ReportHistory:
        """Hourly counts since ``since`` and 10-second counts of the last 5 minutes."""

        def read(conn: sqlite3.Connection) -> ReportHistory:
            created = conn.execute(
                "SELECT value FROM state WHERE namespace = 'store' AND key = 'created'"
            ).fetchone()
            first = conn.execute("SELECT MIN(time) FROM reports").fetchone()[0]
            # History covers from the store's creation, or earlier when imported.
            starts = [now, *([json.loads(created[0])] if created else []), first]
            start = min(x for x in starts if x is not None)
            hourly = conn.execute(
                "SELECT service, CAST(time / 3600 AS INTEGER) AS hour, COUNT(*) FROM reports "
                "WHERE time >= ? GROUP BY service, hour",
                (since,),
            ).fetchall()
            recent = conn.execute(
                "SELECT service, CAST(time / 10 AS INTEGER) AS bucket, COUNT(*) FROM reports "
                "WHERE time > ? GROUP BY service, bucket",
                (now - 300,),
            ).fetchall()
            return ReportHistory(start, hourly, recent)

        return await self._submit(read)

    async def prune_reports(self, before: float) -> int:
        """Delete reports older than ``before`` in short transactions; returns how many."""

        def prune(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM reports WHERE id IN "
                "(SELECT id FROM reports WHERE time < ? ORDER BY time LIMIT ?)",
                (before, PRUNE_CHUNK),
            ).rowcount

        total = 0
        while True:
            deleted = await self._submit(prune)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    def iter_reports(self, since: float = 0.0) -> Iterator[tuple[int, Any, Any, Any, Any]]:
        """(id, time, service, problem, country) as stored, in time order, read-only.

        Values are as stored, unchecked: rows from older versions or other tools
        may hold anything (text in ``time``, invalid UTF-8, which comes back with
        surrogate escapes instead of failing the whole read). WAL lets this read
        run beside the writer (even beside a running daemon).
        """
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        try:
            yield from conn.execute(
                "SELECT id, time, service, problem, country FROM reports WHERE time >= ? "
                "ORDER BY time",
                (since,),
            )
        finally:
            conn.close()

    def first_reports(self) -> dict[str, float]:
        """The time of each service's earliest stored report, read-only (any thread)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        conn.text_factory = lambda data: data.decode("utf-8", "surrogateescape")
        try:
            rows = conn.execute(
                "SELECT service, MIN(time) FROM reports WHERE typeof(time) IN ('integer', 'real') "
                "GROUP BY service"
            ).fetchall()
        finally:
            conn.close()
        return {service: float(first) for service, first in rows if isinstance(service, str)}

    # -- keyed JSON state for other parts (detectors, budgets, incidents) --

    async def put_state(self, namespace: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under (namespace, key); durable when it returns."""
        text = json.dumps(value, separators=(",", ":"))
        now = self._clock.time()

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO state VALUES (?, ?, ?, ?) ON CONFLICT (namespace, key) "
                "DO UPDATE SET value = excluded.value, updated = excluded.updated",
                (namespace, key, text, now),
            )

        await self._submit(put)

    async def get_state(self, namespace: str) -> dict[str, Any]:
        """Every key of a namespace with its decoded value."""

        def get(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute(
                "SELECT key, value FROM state WHERE namespace = ?", (namespace,)
            ).fetchall()
            return {key: json.loads(value) for key, value in rows}

        return await self._submit(get)

    async def get_state_text(self, namespace: str) -> dict[str, str]:
        """Every key of a namespace with its stored text, undecoded (see ``decode_state``)."""

        def get(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT key, value FROM state WHERE namespace = ?", (namespace,)
            ).fetchall()
            return {str(key): str(value) for key, value in rows}

        return await self._submit(get)

    async def delete_state(self, namespace: str, key: str) -> None:
        """Forget one key."""

        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM state WHERE namespace = ? AND key = ?", (namespace, key))

        await self._submit(delete)

    # -- health ----------------------------------------------------------

    def size_bytes(self) -> int:
        """The database file plus its WAL, as on disk now."""
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total
