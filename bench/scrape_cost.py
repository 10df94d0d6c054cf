"""Scrape cost: /metrics render time and size against prometheus_client.generate_latest.

Builds the state of N probes that have each run a few times, then renders it both
ways in this process: generate_latest over a registry holding every family (the
process-wide ones from StateCollector, the per-target ones as prometheus_client
metric families parsed from our page once, so the library only renders them),
and the daemon's MetricsPage in the steady state of a 30 s
probe interval scraped every 15 s, where half the targets ran since the last scrape.

    PYTHONPATH=daemon python -m bench.scrape_cost [--targets 1000 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bench.common import Figure, Row, print_table
from outagewatch.catalogue import PROBE_FAMILIES, RUN_FAMILIES
from outagewatch.clock import SystemClock
from outagewatch.exposition import MetricsPage
from outagewatch.logging import configure
from outagewatch.metrics import StateCollector
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery

GOAL_MS = 250.0


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
            tls_earliest_expiry=now + 86400 * 30,
        )
        key = f"svc{i % 20}/probe/p{i}"
        pipeline.record_run(key, "http", result.duration_seconds, [result])
        if result.reason == "timeout":  # a run the framework stopped: a source failure
            pipeline.record_run(key, "http", 2.0, error_reason="timeout")


class _PerTarget(Collector):
    """The per-target families as prometheus_client metric families (built once)."""

    def __init__(self, pipeline: Pipeline, page: MetricsPage) -> None:
        text = asyncio.run(page.render()).decode()
        names = set(PROBE_FAMILIES) | set(RUN_FAMILIES)
        self._families = [
            family
            for family in text_string_to_metric_families(text)
            if family.name in names or f"{family.name}_total" in names
        ]

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def measure_one(targets: int, runs: int) -> tuple[Figure, Figure, int, int]:
    """(ours ms, generate_latest ms, our bytes, their bytes) at ``targets`` probes."""
    configure("error", "console")  # the simulated ups and downs would log each transition
    pipeline = Pipeline(SystemClock())
    for round_ in range(3):
        run_probes(pipeline, range(targets), round_)
    rest = CollectorRegistry()
    PlatformCollector(registry=rest)
    GCCollector(registry=rest)
    rest.register(StateCollector(StatusQuery(pipeline.state), "bench", "bench", "3"))
    page = MetricsPage(StatusQuery(pipeline.state), rest)
    full = CollectorRegistry()
    PlatformCollector(registry=full)
    GCCollector(registry=full)
    full.register(StateCollector(StatusQuery(pipeline.state), "bench", "bench", "3"))
    full.register(_PerTarget(pipeline, page))

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
    their_size = 0
    for _ in range(runs):
        started = time.perf_counter()
        body = generate_latest(full)
        theirs.append(1000 * (time.perf_counter() - started))
        their_size = len(body)
    return Figure(tuple(ours)), Figure(tuple(theirs)), our_size, their_size


def measure(targets: tuple[int, ...] = (1000, 10000), runs: int = 5) -> list[Row]:
    """One row per target count."""
    rows = []
    for count in targets:
        ours, theirs, our_size, their_size = measure_one(count, runs)
        ratio = ours.median / theirs.median
        rows.append(
            Row(
                f"/metrics render ms at {count:,} targets (half changed; "
                f"{our_size / 1e6:.1f} MB vs {their_size / 1e6:.1f} MB)",
                ours.show("{:.1f}"),
                "prometheus_client generate_latest",
                theirs.show("{:.1f}"),
                f"{ratio:.2f}x",
                f"< {GOAL_MS:.0f} ms at 10,000",
                ours.median < GOAL_MS if count >= 10000 else None,
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print_table(measure(tuple(args.targets), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
