"""Memory at steady state: the bytes each per-target structure holds with every
buffer at its cap, against its budget, and the total for a target count.

Each structure is built for two target counts with ``tracemalloc`` tracing and
its cost per target is the difference divided by the difference in targets, so
what does not grow with targets (imports, per-service rings) cancels out. The
state is pre-filled through the same code path as live runs
(``Pipeline.record_run`` with real ``ProbeResult``s): one run per target every
5 minutes over the 6-hour chart window (72 runs), so every 5-minute success
bucket, every streak and every failure counter (each target fails once with each
of the 10 HTTP reasons) is at its cap. A probe's state does not grow with runs
past that, so a 30 s interval ends in the same sizes.

    PYTHONPATH=daemon python -m bench.memory [--targets 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from bench.common import Row, print_table
from outagewatch.clock import FakeClock
from outagewatch.config import Config, parse_config
from outagewatch.exposition import MetricsPage
from outagewatch.history import HISTORY_WINDOW, REPORT_BUCKET, StatusHistory
from outagewatch.keys import probe_source_key
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.registry import build_sources
from outagewatch.logging import configure
from outagewatch.observations import HTTP_FAILURE_REASONS, PHASES, ChatStats, ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery

SERVICE = "bench"
# Bytes per target each structure may hold at steady state; tests/scale asserts
# them (docs/benchmarks.md, "Memory"). Measured values plus about 20 % headroom.
BUDGETS = {
    "config (validated model)": 1_600,
    "sources (built from the config)": 1_700,
    # 2,000 when the rings landed; the failure detail kept per probe (issue 21) and the
    # evidence streaks of the verdict rules (issue 18) brought it to about 2,420.
    "pipeline state of an HTTP probe, chart history included": 2_600,
    "chart history of an HTTP probe": 150,  # its last conclusive result, keyed by name
    # 362 one-minute slots of 14 bytes (float64 time, float32 sum, uint16 count).
    "chart history of a chat probe (TTFT per minute, 6 h)": 6_000,
    # Line prefixes, rendered chunks and the page itself (6 series a probe that failed
    # every way; 17 before the reasons moved to a per-service family).
    "/metrics cache and page of an HTTP probe": 9_000,
}
# The goal: 10,000 targets in 250 MB of RSS with every buffer full. What the
# process holds whatever the target count (interpreter, imports, loop, web app,
# store, per-service rings) is measured by bench.many_targets as the RSS of a
# pre-filled daemon with 10 probes.
GOAL_BYTES = 250e6
GOAL_TARGETS = 10_000


def probes_config(targets: int) -> Config:
    """``targets`` HTTP probes of one service, as ``bench.common.probes_config`` writes them."""
    probes = {
        f"t{i}": {
            "kind": "http",
            "url": f"http://127.0.0.1:9/ok?t={i}",
            "interval": "30s",
            "timeout": "2s",
        }
        for i in range(targets)
    }
    return parse_config({"services": {SERVICE: {"probes": probes}}})


def http_result(i: int, when: float, run: int) -> ProbeResult:
    """Run ``run`` of target ``i``: a failure with each reason once, else a full success."""
    failed = run < len(HTTP_FAILURE_REASONS)
    return ProbeResult(
        service=SERVICE,
        probe=f"t{i}",
        kind="http",
        time=when,
        success=not failed,
        duration_seconds=0.05 + (i % 7) / 100,
        reason=HTTP_FAILURE_REASONS[run] if failed else None,
        status_code=None if failed else 200,
        phases={phase: 0.001 * (n + 1) for n, phase in enumerate(PHASES)},
        tls_earliest_expiry=when + 86400 * 30,
        detail=f"bench failure {run} of t{i}" if failed else None,
    )


def prefill(pipeline: Pipeline, targets: int, now: float, every: float = REPORT_BUCKET) -> int:
    """Runs of every target over the chart window through ``record_run``; returns how many."""
    runs = int(HISTORY_WINDOW // every)
    for run in range(runs):
        when = now - HISTORY_WINDOW + (run + 1) * every
        for i in range(targets):
            result = http_result(i, when, run)
            key = probe_source_key(SERVICE, result.probe)
            error = "timeout" if result.reason == "timeout" else None  # the framework's record
            pipeline.record_run(key, "http", result.duration_seconds, [result], error)
    return runs * targets


def chat_history(targets: int, now: float) -> StatusHistory:
    """Chart history of ``targets`` chat probes, each with a TTFT in every minute of 6 h."""
    history = StatusHistory()
    for minute in range(int(HISTORY_WINDOW // 60) + 2):
        when = now - HISTORY_WINDOW - 60 + minute * 60
        for i in range(targets):
            stats = ChatStats("ok", ttft_seconds=0.4 + i % 10 / 100)
            history.probe(ProbeResult(SERVICE, f"c{i}", "anthropic", when, True, 0.9, chat=stats))
    return history


def _traced(build: Callable[[], Any]) -> tuple[int, Any]:
    """Bytes ``build()``'s result holds (traced allocations that survive it)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before, built


def per_target(build: Callable[[int], Any], small: int = 200, large: int = 1200) -> float:
    """Bytes per target of what ``build(targets)`` holds: the slope between two counts."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        sizes = []
        for targets in (small, large):
            size, built = _traced(functools.partial(build, targets))
            sizes.append(size)
            del built
        return (sizes[1] - sizes[0]) / (large - small)
    finally:
        if started:
            tracemalloc.stop()


def _pipeline(targets: int) -> Pipeline:
    pipeline = Pipeline(FakeClock())
    prefill(pipeline, targets, time.time())
    return pipeline


@dataclass(frozen=True)
class Measured:
    name: str
    bytes_per_target: float
    budget: int


def measure_structures(small: int = 200, large: int = 1200) -> list[Measured]:
    """Each budgeted structure's bytes per target, measured between two target counts."""
    configure("error", "console")  # the pre-filled failures would log each transition
    now = time.time()
    counts = {"small": small, "large": large}
    configs = {n: probes_config(n) for n in (small, large)}
    pipelines: dict[int, Pipeline] = {}

    def page(n: int) -> tuple[MetricsPage, bytes]:
        rendered = MetricsPage(StatusQuery(pipelines[n].state), CollectorRegistry())
        return rendered, asyncio.run(rendered.render())

    def history(n: int) -> StatusHistory:
        history = StatusHistory()
        for run in range(int(HISTORY_WINDOW // REPORT_BUCKET)):
            when = now - HISTORY_WINDOW + (run + 1) * REPORT_BUCKET
            for i in range(n):
                history.probe(http_result(i, when, run))
        return history

    figures = {
        "config (validated model)": per_target(probes_config, **counts),
        "sources (built from the config)": per_target(
            lambda n: build_sources(configs[n], ChatBudget()), **counts
        ),
        "pipeline state of an HTTP probe, chart history included": per_target(_pipeline, **counts),
        "chart history of an HTTP probe": per_target(history, **counts),
        "chart history of a chat probe (TTFT per minute, 6 h)": per_target(
            lambda n: chat_history(n, now), small=small // 10, large=large // 10
        ),
    }
    for n in (small, large):  # the page reads a pipeline built outside the measurement
        pipelines[n] = _pipeline(n)
    figures["/metrics cache and page of an HTTP probe"] = per_target(page, **counts)
    return [Measured(name, figures[name], BUDGETS[name]) for name in BUDGETS]


def steady_state_bytes(targets: int, fixed: float, measured: list[Measured]) -> float:
    """The computed total for ``targets`` HTTP probes: fixed part plus each structure.

    The HTTP probe's chart history is part of its pipeline state; chat probes
    are not counted (a handful per service, each its own line in the table).
    """
    grows = [
        m
        for m in measured
        if not m.name.startswith("chart history")  # inside the pipeline state, or chat only
    ]
    return fixed + targets * sum(m.bytes_per_target for m in grows)


def rows(targets: int = GOAL_TARGETS) -> list[Row]:
    measured = measure_structures()
    out = [
        Row(
            f"memory bytes per target: {m.name}",
            f"{m.bytes_per_target:,.0f}",
            "budget",
            f"{m.budget:,}",
            f"{m.bytes_per_target / m.budget:.2f}x",
            "<= 1x",
            m.bytes_per_target <= m.budget,
        )
        for m in measured
    ]
    per = steady_state_bytes(1, 0.0, measured)
    out.append(
        Row(
            f"memory MB computed, {targets:,} HTTP targets, buffers full, fixed part aside",
            f"{targets * per / 1e6:.0f}",
            "n/a",
            "n/a",
            "n/a",
            "< 250 MB with the fixed part",
            None,
        )
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=GOAL_TARGETS)
    args = parser.parse_args()
    print_table(rows(args.targets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
