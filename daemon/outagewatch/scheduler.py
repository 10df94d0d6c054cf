"""Runs each source on its own interval with APScheduler 3.x.

The framework, not the source, records each run: duration, success, failure
reason. APScheduler 3 does not cancel running jobs on shutdown, so in-flight
runs are tracked here and cancelled by ``shutdown``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from outagewatch.clock import Clock
from outagewatch.pipeline import Pipeline
from outagewatch.sources.base import RunContext, Source, SourceError

# Beyond its own timeout a run gets this much more before the framework stops it.
_HARD_TIMEOUT_GRACE = 5.0
# Spread first runs over at most this long so a restart does not wait a whole long interval.
_MAX_FIRST_RUN_SPREAD = 60.0


def phase_fraction(key: str) -> float:
    """A stable 0..1 offset per key, so runs spread evenly and survive restarts."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big") / 2**64


class Scheduler:
    """One APScheduler job per source, a global concurrency cap, cancellable runs."""

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
        self._first_run: dict[str, float] = {}  # epoch seconds: the start of each job's grid
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._log = structlog.get_logger("outagewatch.scheduler")
        # Two INFO lines per run would drown the daemon's own logs.
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
                self._aps.remove_job(key)
                del self._sources[key]
                del self._first_run[key]
        for key, source in wanted.items():
            old = self._sources.get(key)
            if old is not None and type(old) is type(source) and old.config == source.config:
                continue  # unchanged: keep the running source and its state
            self._sources[key] = source
            self._add_job(source)

    def _add_job(self, source: Source) -> None:
        spread = min(source.interval, _MAX_FIRST_RUN_SPREAD)
        first_run = self._clock.time() + phase_fraction(source.key) * spread
        self._first_run[source.key] = first_run
        first = datetime.fromtimestamp(first_run, tz=UTC)
        self._aps.add_job(
            self._run,
            IntervalTrigger(seconds=source.interval, start_date=first, timezone=UTC),
            args=[source.key],
            id=source.key,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(source.interval)),
            replace_existing=True,
            next_run_time=first,
        )

    async def _run(self, key: str) -> None:
        source = self._sources.get(key)
        if source is None:
            return
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            # The run was due on the job's grid point at or before now.
            now = self._clock.time()
            first_run = self._first_run[key]
            planned = first_run + max(0, (now - first_run) // source.interval) * source.interval
            # Jitter as a delay inside the run: APScheduler's own jitter drifts.
            jitter = 0.0
            if self._jitter_ratio > 0:
                jitter = self._rng.uniform(0, self._jitter_ratio * source.interval)
                await asyncio.sleep(jitter)
            async with self._limit:
                # Late: after its grid point plus jitter, including any wait for the cap.
                self._pipeline.record_lateness(self._clock.time() - planned - jitter)
                await self.run_once(source)
        finally:
            self._in_flight.discard(task)

    async def run_once(self, source: Source) -> None:
        """Run a source now and hand the outcome to the pipeline."""
        ctx = self._context(source)
        start = self._clock.monotonic()
        try:
            async with asyncio.timeout(source.timeout + _HARD_TIMEOUT_GRACE):
                observations = await source.collect(ctx)
        except SourceError as exc:
            duration = self._clock.monotonic() - start
            ctx.log.warning("source_failed", reason=exc.reason, detail=exc.detail)
            self._pipeline.record_run(
                source.key, source.kind, duration, error_reason=exc.reason, error_detail=exc.detail
            )
        except TimeoutError:
            duration = self._clock.monotonic() - start
            ctx.log.warning("source_timed_out", seconds=round(duration, 3))
            self._pipeline.record_run(source.key, source.kind, duration, error_reason="timeout")
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
        if self._aps.running:
            self._aps.shutdown(wait=False)
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=grace)
