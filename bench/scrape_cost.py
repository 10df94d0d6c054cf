"""Scrape cost: /metrics render time and size against prometheus_client.generate_latest.

Builds the state of N probes that have each run a few times, then renders it both
ways in this process: generate_latest over a registry holding every family (the
process-wide ones from StateCollector, the per-target ones as prometheus_client
metric families parsed from our page once, so the library only renders them),
and the daemon's MetricsPage in the steady state of a 30 s
probe interval scraped every 15 s, where half the targets ran since the last scrape.

The daemon's garbage collector settings apply (start-up objects frozen, a larger
young generation), as in ``outagewatch run``. Goals (issue 20): under 250 ms at
20,000 targets, and at most 0.5 MB per 1,000 targets.

    PYTHONPATH=daemon python -m bench.scrape_cost [--targets 1000 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bench.common import Figure, Row, print_table
from outagewatch.app import GC_THRESHOLDS
from outagewatch.catalogue import PROBE_DETAIL_FAMILIES, PROBE_FAMILIES, RUN_FAMILIES
from outagewatch.clock import SystemClock
from outagewatch.exposition import MetricsPage
from outagewatch.logging import configure
from outagewatch.metrics import StateCollector
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery

GOAL_MS = 250.0
GOAL_TARGETS = 20000
GOAL_BYTES_PER_TARGET = 500
EXPIRY = 1_800_000_000.0


def run_probes(pipeline: Pipeline, probes: range, round_: int) -> None:
    """One run of each probe: mostly successes, some failures of a few kinds."""
    now = time.time()
    for i in probes:
        failed = (i + round_) % 17 == 0
        result = ProbeResult(
            service=f"svc{i % 20}",
            probe=f"p{i}",
            kind="http",
            time=now,
            success=not failed,
            duration_seconds=0.05 + (i % 7) / 100,
            reason=("connect", "timeout", "http_status")[i % 3] if failed else None,
            status_code=None if failed else 200,
            phases={"dns": 0.001, "connect": 0.002, "tls": 0.01, "processing": 0.03},
            tls_earliest_expiry=EXPIRY,  # the same certificate run after run
        )
        key = f"svc{i % 20}/probe/p{i}"
        pipeline.record_run(key, "http", result.duration_seconds, [result])
        if result.reason == "timeout":  # a run the framework stopped: a source failure
            pipeline.record_run(key, "http", 2.0, error_reason="timeout")


class _PerTarget(Collector):
    """The per-target families as prometheus_client metric families (built once)."""

    def __init__(self, pipeline: Pipeline, page: MetricsPage) -> None:
        text = asyncio.run(page.render()).decode()
        names = set(PROBE_FAMILIES) | set(PROBE_DETAIL_FAMILIES) | set(RUN_FAMILIES)
        self._families = [
            family
            for family in text_string_to_metric_families(text)
            if family.name in names or f"{family.name}_total" in names
        ]

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def measure_one(targets: int, runs: int) -> tuple[Figure, Figure, int, int]:
    """(ours ms, generate_latest ms, our bytes, our bytes with metrics.probe_details,
    the page before issue 20) at ``targets`` probes."""
    configure("error", "console")  # the simulated ups and downs would log each transition
    thresholds = gc.get_threshold()
    pipeline = Pipeline(SystemClock())
    for round_ in range(3):
        run_probes(pipeline, range(targets), round_)
    rest = CollectorRegistry()
    PlatformCollector(registry=rest)
    GCCollector(registry=rest)
    status = StatusQuery(pipeline.state)
    rest.register(StateCollector(status, "bench", "bench", "3"))
    page = MetricsPage(status, rest)
    full = CollectorRegistry()
    PlatformCollector(registry=full)
    GCCollector(registry=full)
    full.register(StateCollector(status, "bench", "bench", "3"))
    full.register(_PerTarget(pipeline, page))
    gc.freeze()  # as the daemon does once it has started
    gc.set_threshold(*GC_THRESHOLDS)

    async def scrapes() -> tuple[list[float], int]:
        await page.render()  # the first scrape renders everything once
        times, size = [], 0
        half = targets // 2
        for n in range(runs):
            # Half the targets ran since the last scrape (30 s interval, 15 s scrapes).
            run_probes(pipeline, range(half) if n % 2 else range(half, targets), 3 + n)
            started = time.perf_counter()
            body = await page.render()
            times.append(1000 * (time.perf_counter() - started))
            size = len(body)
        return times, size

    ours, our_size = asyncio.run(scrapes())
    theirs = []
    for _ in range(runs):
        started = time.perf_counter()
        generate_latest(full)
        theirs.append(1000 * (time.perf_counter() - started))
    detailed = MetricsPage(status, rest, probe_details=True)
    detailed_size = len(asyncio.run(detailed.render()))
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    return Figure(tuple(ours)), Figure(tuple(theirs)), our_size, detailed_size


def measure(targets: tuple[int, ...] = (1000, GOAL_TARGETS), runs: int = 5) -> list[Row]:
    """Two rows per target count: render time, and bytes per target."""
    rows = []
    for count in targets:
        ours, theirs, our_size, detailed_size = measure_one(count, runs)
        judged = count >= GOAL_TARGETS
        rows += [
            Row(
                f"/metrics render ms at {count:,} targets (half changed)",
                ours.show("{:.1f}"),
                "prometheus_client generate_latest",
                theirs.show("{:.1f}"),
                f"{ours.median / theirs.median:.2f}x",
                f"< {GOAL_MS:.0f} ms at {GOAL_TARGETS:,}",
                ours.median < GOAL_MS if judged else None,
            ),
            Row(
                f"/metrics bytes per target at {count:,} targets (uncompressed)",
                f"{our_size / count:.0f}",
                "the same with metrics.probe_details (the page before issue 20)",
                f"{detailed_size / count:.0f}",
                f"{our_size / detailed_size:.2f}x",
                f"<= {GOAL_BYTES_PER_TARGET} (0.5 MB per 1,000)",
                our_size / count <= GOAL_BYTES_PER_TARGET,
            ),
        ]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, GOAL_TARGETS])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print_table(measure(tuple(args.targets), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
