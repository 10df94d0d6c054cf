"""The scheduler: concurrency cap, hard timeout, crash isolation, reload sync."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from outagewatch.clock import SystemClock
from outagewatch.observations import Observation
from outagewatch.pipeline import Pipeline
from outagewatch.scheduler import Scheduler, phase_fraction
from outagewatch.sources.base import RunContext, Source
from outagewatch.sources.client import HttpClients
from outagewatch.sources.errors import SourceError


@dataclass(eq=False)
class FakeSource:
    key: str
    behaviour: str = "ok"
    interval: float = 0.2
    timeout: float = 0.1
    kind: str = "fake"
    config: object = None
    log_context: dict[str, str] = field(default_factory=dict)
    running: int = 0
    peak: int = 0
    runs: int = 0
    everywhere: list[int] = field(default_factory=lambda: [0, 0])  # in flight, peak

    async def collect(self, ctx: RunContext) -> Sequence[Observation]:
        self.runs += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.everywhere[0] += 1
        self.everywhere[1] = max(self.everywhere[1], self.everywhere[0])
        try:
            if self.behaviour == "slow":
                await asyncio.sleep(0.05)
            elif self.behaviour == "hang":
                await asyncio.sleep(3600)
            elif self.behaviour == "crash":
                raise ZeroDivisionError
            elif self.behaviour == "fail":
                raise SourceError("bad_response", "not JSON")
            return []
        finally:
            self.running -= 1
            self.everywhere[0] -= 1


def make_scheduler(pipeline: Pipeline, limit: int = 10) -> Scheduler:
    clients = HttpClients()
    return Scheduler(
        pipeline,
        lambda s: RunContext(clients, SystemClock(), structlog.get_logger("t")),
        SystemClock(),
        max_concurrency=limit,
        jitter_ratio=0.0,
    )


async def test_run_outcomes_are_recorded_by_the_framework() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    sources = [FakeSource("ok"), FakeSource("fail", "fail"), FakeSource("crash", "crash")]
    for source in sources:
        await scheduler.run_once(source)
    runs = pipeline.state.runs
    assert runs["ok"].last_success_time is not None and not runs["ok"].failures
    assert runs["fail"].failures == {"bad_response": 1}
    assert runs["fail"].last_error == "bad_response: not JSON"
    assert runs["crash"].failures == {"internal": 1}


async def test_a_hung_source_is_stopped_by_the_one_run_deadline() -> None:
    pipeline = Pipeline(SystemClock())
    source = FakeSource("hang", "hang")
    await asyncio.wait_for(make_scheduler(pipeline).run_once(source), 2)
    assert pipeline.state.runs["hang"].failures == {"timeout": 1}
    assert (
        pipeline.state.runs["hang"].last_error == f"timeout: no answer within {source.timeout:g}s"
    )


async def test_concurrency_cap_holds_across_sources() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline, limit=2)
    shared = [0, 0]
    sources = [FakeSource(f"s{i}", "slow", interval=0.1, everywhere=shared) for i in range(8)]
    scheduler.start(sources)
    await asyncio.sleep(1.0)
    await scheduler.shutdown(1.0)
    assert max(s.peak for s in sources) == 1  # one run at a time per source
    assert all(s.runs >= 2 for s in sources)
    assert shared[1] == 2  # the global cap was reached and never exceeded


async def test_shutdown_cancels_runs_in_flight() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    source = FakeSource("hang", "hang", interval=60, timeout=50)
    scheduler.start([source])
    await scheduler.run_once(FakeSource("warm"))
    for _ in range(100):
        if source.running:
            break
        await asyncio.sleep(0.02)
    await asyncio.wait_for(scheduler.shutdown(1.0), 2)
    assert source.running == 0


async def test_sync_keeps_unchanged_sources_and_replaces_changed_ones() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    first = FakeSource("a", config="v1", interval=60)
    gone = FakeSource("b", config="v1", interval=60)
    scheduler.start([first, gone])
    scheduler.sync([FakeSource("a", config="v1", interval=60), FakeSource("c", interval=60)])
    assert scheduler.sources["a"] is first  # unchanged: keeps its state
    assert set(scheduler.sources) == {"a", "c"}
    changed = FakeSource("a", config="v2", interval=60)
    scheduler.sync([changed])
    assert scheduler.sources["a"] is changed
    await scheduler.shutdown(1.0)


async def test_sync_cancels_the_run_in_flight_of_a_source_it_removes_or_replaces() -> None:
    # A run that finished after a reload would record a source the pipeline has
    # forgotten: its series would come back to /metrics and stay there.
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    removed = FakeSource("removed", "hang", interval=0.1, timeout=50)
    changed = FakeSource("changed", "hang", config="v1", interval=0.1, timeout=50)
    scheduler.start([removed, changed])
    for _ in range(100):
        if removed.running and changed.running:
            break
        await asyncio.sleep(0.02)
    assert removed.running and changed.running
    replacement = FakeSource("changed", config="v2", interval=0.1)
    scheduler.sync([replacement])
    await asyncio.sleep(0.5)
    assert removed.running == 0 and changed.running == 0
    assert "removed" not in pipeline.state.runs
    # The replacement is not held back by the cancelled run: it starts on its own grid.
    assert replacement.runs >= 2
    assert pipeline.state.runs["changed"].runs == replacement.runs
    await scheduler.shutdown(1.0)


def test_phase_offsets_are_stable_and_spread() -> None:
    fractions = [phase_fraction(f"svc/probe/{i}") for i in range(1000)]
    assert fractions[0] == phase_fraction("svc/probe/0")
    assert all(0 <= f < 1 for f in fractions)
    buckets = [0] * 10
    for f in fractions:
        buckets[int(f * 10)] += 1
    assert min(buckets) > 60  # roughly uniform


def test_fake_source_satisfies_the_protocol() -> None:
    source: Source = FakeSource("x")
    assert source.key == "x"


async def test_sources_sharing_an_interval_and_phase_slot_share_one_job() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    sources = [FakeSource(f"s{i}", interval=0.2) for i in range(40)]
    scheduler.start(sources)
    jobs = scheduler._aps.get_jobs()  # the cohorts are the point
    # 0.2 s has two 100 ms slots: 40 sources, at most 2 jobs.
    assert 1 <= len(jobs) <= 2
    await asyncio.sleep(0.9)
    assert all(s.runs >= 3 for s in sources)  # every member runs on its cohort's grid
    scheduler.sync(sources[:1])
    assert len(scheduler._aps.get_jobs()) == 1  # a cohort left empty goes
    runs = [s.runs for s in sources]
    await asyncio.sleep(0.5)
    assert sources[0].runs > runs[0]
    assert [s.runs for s in sources[1:]] == runs[1:]  # removed: never run again
    await scheduler.shutdown(1.0)


async def test_a_member_still_running_skips_its_turn() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    slow = FakeSource("slow", "hang", interval=0.1, timeout=5)
    scheduler.start([slow])
    await asyncio.sleep(0.6)
    assert slow.runs == 1 and slow.peak == 1  # later turns found it still going
    await scheduler.shutdown(1.0)


async def test_a_source_added_later_first_runs_at_its_own_offset() -> None:
    pipeline = Pipeline(SystemClock())
    scheduler = make_scheduler(pipeline)
    first = FakeSource("a", interval=0.3)
    scheduler.start([first])
    await asyncio.sleep(0.35)
    late = FakeSource("b", interval=0.3)
    scheduler.sync([first, late])
    await asyncio.sleep(1.0)
    assert 3 <= late.runs <= 5  # from its offset on, once per interval, no double start
    await scheduler.shutdown(1.0)
