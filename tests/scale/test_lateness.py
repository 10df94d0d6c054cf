"""The scheduler measures how late each run starts against its planned time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from outagewatch.clock import SystemClock
from outagewatch.observations import Observation
from outagewatch.pipeline import LATENESS_BUCKETS, Pipeline
from outagewatch.scheduler import Scheduler
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients


@dataclass(eq=False)
class Source:
    key: str
    interval: float
    block: float = 0.0  # seconds the run holds the event loop (a CPU-bound hog)
    timeout: float = 0.05
    kind: str = "fake"
    config: object = None
    log_context: dict[str, str] = field(default_factory=dict)

    async def collect(self, ctx: RunContext) -> Sequence[Observation]:
        time.sleep(self.block)  # noqa: ASYNC251 (holding the loop is the point)
        return []


async def run_for(seconds: float, *sources: Source) -> Pipeline:
    pipeline = Pipeline(SystemClock())
    clients = HttpClients()
    scheduler = Scheduler(
        pipeline,
        lambda s: RunContext(clients, SystemClock(), structlog.get_logger("t")),
        SystemClock(),
        max_concurrency=10,
        jitter_ratio=0.0,
    )
    scheduler.start(sources)
    await asyncio.sleep(seconds)
    await scheduler.shutdown(1.0)
    return pipeline


def late_runs(pipeline: Pipeline, over: float) -> int:
    """Runs that started more than ``over`` (a bucket bound) seconds late."""
    hist = pipeline.state.scheduler_lateness
    return hist.count - sum(hist.counts[: LATENESS_BUCKETS.index(over) + 1])


async def test_every_run_is_measured_and_a_free_loop_starts_runs_on_time() -> None:
    pipeline = await run_for(0.8, Source("a", 0.1), Source("b", 0.15))
    hist = pipeline.state.scheduler_lateness
    assert hist.count == pipeline.state.runs["a"].runs + pipeline.state.runs["b"].runs >= 8
    assert late_runs(pipeline, over=0.05) <= 1


async def test_a_run_held_up_by_a_blocked_loop_counts_as_late() -> None:
    # The hog holds the loop nearly all the time: the victim's runs wait for it.
    pipeline = await run_for(1.5, Source("hog", 0.3, block=0.5), Source("victim", 0.3))
    assert pipeline.state.runs["victim"].runs >= 2
    assert late_runs(pipeline, over=0.1) >= 2
