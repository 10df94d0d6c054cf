"""Runs each source on its own interval with APScheduler 3.x.

Sources that share an interval and whose phase falls in the same 100 ms slot
form a cohort with one APScheduler job; when it fires, each member starts at
its own jittered time on the event loop. A job per source cost as much CPU as
the probe itself (APScheduler's wake-up, job store and ``datetime`` work per
run); per cohort that cost is shared by every member.

The framework, not the source, records each run: duration, success, failure
reason, under one deadline per run (``run_source``). APScheduler 3 does not
cancel running jobs on shutdown, so in-flight runs are tracked here and
cancelled by ``shutdown``, and by ``sync`` for the sources it removes or replaces.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from outagewatch.clock import Clock
from outagewatch.pipeline import Pipeline
from outagewatch.sources.base import RunContext, Source, run_source
from outagewatch.sources.errors import SourceError

# Spread first runs over at most this long so a restart does not wait a whole long interval.
_MAX_FIRST_RUN_SPREAD = 60.0
# Width of a cohort's phase slot: members start up to this much before their own phase.
_SLOT = 0.1

Cohort = tuple[float, int]  # (interval, slot): slot * _SLOT is the grid's offset in the interval


def phase_fraction(key: str) -> float:
    """A stable 0..1 offset per key, so runs spread evenly and survive restarts."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big") / 2**64


def cohort_of(interval: float, first_run: float) -> Cohort:
    """The cohort whose grid point falls at most one slot before ``first_run``'s."""
    return interval, int((first_run % interval) // _SLOT)


class Scheduler:
    """APScheduler jobs per cohort, a global concurrency cap, cancellable runs."""

    def __init__(
        self,
        pipeline: Pipeline,
        context: Callable[[Source], RunContext],
        clock: Clock,
        max_concurrency: int,
        jitter_ratio: float,
        rng: random.Random | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._context = context
        self._clock = clock
        self._limit = asyncio.Semaphore(max_concurrency)
        self._jitter_ratio = jitter_ratio
        self._rng = rng or random.Random()
        self._sources: dict[str, Source] = {}
        self._first_run: dict[str, float] = {}  # epoch seconds of each source's first run
        self._cohort: dict[str, Cohort] = {}
        self._members: dict[Cohort, dict[str, None]] = {}  # insertion-ordered sets of keys
        self._running: dict[str, asyncio.Task[None]] = {}  # key -> its run in flight
        self._stopped = False
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._log = structlog.get_logger("outagewatch.scheduler")
        # APScheduler's INFO lines, two per job run, would drown the daemon's own logs.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)

    @property
    def running(self) -> bool:
        return bool(self._aps.running)

    @property
    def sources(self) -> dict[str, Source]:
        return dict(self._sources)

    def start(self, sources: Iterable[Source]) -> None:
        self._aps.start()
        self.sync(sources)

    def sync(self, sources: Iterable[Source]) -> None:
        """Make the jobs match ``sources``: add new, replace changed, remove gone."""
        wanted = {source.key: source for source in sources}
        for key in list(self._sources):
            if key not in wanted:
                self._remove(key)
        for key, source in wanted.items():
            old = self._sources.get(key)
            if old is not None and type(old) is type(source) and old.config == source.config:
                continue  # unchanged: keep the running source and its state
            if old is not None:
                self._remove(key)
            self._add(source)

    def _add(self, source: Source) -> None:
        key, interval = source.key, source.interval
        first_run = self._clock.time() + phase_fraction(key) * min(interval, _MAX_FIRST_RUN_SPREAD)
        self._sources[key] = source
        self._first_run[key] = first_run
        cohort = self._cohort[key] = cohort_of(interval, first_run)
        members = self._members.get(cohort)
        if members is None:
            members = self._members[cohort] = {}
            self._add_job(cohort)
        members[key] = None
        # The cohort's grid point before first_run has passed or is skipped for it.
        self._start_at(source, first_run + self._jitter(interval))

    def _remove(self, key: str) -> None:
        # A run in flight is cancelled: it would finish after the pipeline forgot the
        # source and bring its series back to /metrics until the next reload.
        running = self._running.pop(key, None)
        if running is not None:
            running.cancel()
        del self._sources[key]
        del self._first_run[key]
        cohort = self._cohort.pop(key)
        members = self._members[cohort]
        del members[key]
        if not members:
            del self._members[cohort]
            self._aps.remove_job(_job_id(cohort))

    def _add_job(self, cohort: Cohort) -> None:
        interval, slot = cohort
        offset = slot * _SLOT
        now = self._clock.time()
        # The cohort's first grid point after now; later ones follow every interval.
        first = offset + ((now - offset) // interval + 1) * interval
        start = datetime.fromtimestamp(first, tz=UTC)
        self._aps.add_job(
            self._fire,
            IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
            args=[cohort],
            id=_job_id(cohort),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
            replace_existing=True,
            next_run_time=start,
        )

    def _jitter(self, interval: float) -> float:
        # Jitter is a delay from the grid point, so the grid itself never drifts.
        return self._rng.uniform(0, self._jitter_ratio * interval) if self._jitter_ratio else 0.0

    async def _fire(self, cohort: Cohort) -> None:
        """A cohort is due: start each member whose last run has finished."""
        interval, slot = cohort
        offset = slot * _SLOT
        # The grid point due at or before now (APScheduler may fire a little late).
        planned = offset + ((self._clock.time() - offset) // interval) * interval
        sources = self._sources
        for key in self._members.get(cohort, ()):
            if planned <= self._first_run[key]:
                continue  # its first run is still to come, or was this point
            if key in self._running:
                self._log.warning("run_skipped", source=key, why="previous run still going")
                continue
            self._start_at(sources[key], planned + self._jitter(interval))

    def _start_at(self, source: Source, when: float) -> None:
        delay = when - self._clock.time()
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._start, source, when)
        else:
            self._start(source, when)

    def _start(self, source: Source, planned: float) -> None:
        key = source.key
        # A source replaced or removed since this start was planned does not run.
        if self._stopped or self._sources.get(key) is not source or key in self._running:
            return
        task = asyncio.get_running_loop().create_task(self._run(source, planned))
        self._running[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]

    async def _run(self, source: Source, planned: float) -> None:
        async with self._limit:
            # Late: after its grid point plus jitter, including any wait for the cap.
            self._pipeline.record_lateness(self._clock.time() - planned)
            await self.run_once(source)

    async def run_once(self, source: Source) -> None:
        """Run a source now and hand the outcome to the pipeline."""
        ctx = self._context(source)
        start = self._clock.monotonic()
        try:
            observations = await run_source(source, ctx)
        except SourceError as exc:
            duration = self._clock.monotonic() - start
            ctx.log.warning("source_failed", reason=exc.reason, detail=exc.detail)
            self._pipeline.record_run(
                source.key, source.kind, duration, error_reason=exc.reason, error_detail=exc.detail
            )
        except Exception as exc:  # a bug in one source must not stop the others
            duration = self._clock.monotonic() - start
            ctx.log.exception("source_crashed")
            self._pipeline.record_run(
                source.key,
                source.kind,
                duration,
                error_reason="internal",
                error_detail=type(exc).__name__,
            )
        else:
            duration = self._clock.monotonic() - start
            self._pipeline.record_run(source.key, source.kind, duration, observations)

    async def shutdown(self, grace: float) -> None:
        """Stop scheduling, cancel in-flight runs, wait at most ``grace`` seconds."""
        self._stopped = True
        if self._aps.running:
            self._aps.shutdown(wait=False)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)


def _job_id(cohort: Cohort) -> str:
    interval, slot = cohort
    return f"cohort/{interval!r}/{slot}"
