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

The worst-case row: every probe has failed once with each of the 7 HTTP reasons
(sub-reasons spread so each of the 20 services has them all), then succeeded. Its
peer is the same state with the reasons per probe, as the page had them before
they moved to a per-service family: computed, those lines cannot be rendered now.

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
from outagewatch.observations import HTTP_FAILURE_REASONS, SUB_REASONS, ProbeResult
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


def run_every_failure(pipeline: Pipeline, probes: range) -> list[tuple[str, str, str, str]]:
    """Each probe fails once with each of the 7 HTTP reasons, then succeeds; returns
    every (service, probe, reason, sub_reason) that failed."""
    failed: list[tuple[str, str, str, str]] = []
    now = time.time()
    for i in probes:
        service, probe = f"svc{i % 20}", f"p{i}"
        for reason in (*HTTP_FAILURE_REASONS[:7], None):
            subs = SUB_REASONS.get(reason or "", ("",))
            sub_reason = subs[i // 20 % len(subs)]
            result = ProbeResult(
                service=service,
                probe=probe,
                kind="http",
                time=now,
                success=reason is None,
                duration_seconds=0.05 + (i % 7) / 100,
                reason=reason,
                sub_reason=sub_reason or None,
                status_code=None if reason else 200,
                phases={"dns": 0.001, "connect": 0.002, "tls": 0.01, "processing": 0.03},
                tls_earliest_expiry=EXPIRY,
            )
            pipeline.record_run(f"{service}/probe/{probe}", "http", 0.05, [result])
            if reason is not None:
                failed.append((service, probe, reason, sub_reason))
    return failed


def measure_worst(targets: int) -> tuple[int, int]:
    """(our bytes, bytes with the reasons per probe as before) at ``targets`` probes that
    have each failed with every HTTP reason."""
    configure("error", "console")
    pipeline = Pipeline(SystemClock())
    failed = run_every_failure(pipeline, range(targets))
    rest = CollectorRegistry()
    PlatformCollector(registry=rest)
    GCCollector(registry=rest)
    rest.register(StateCollector(StatusQuery(pipeline.state), "bench", "bench", "3"))
    text = asyncio.run(MetricsPage(StatusQuery(pipeline.state), rest).render())
    ours = len(text)
    # Before: no per-service family, and a line per probe and reason instead of one per probe.
    gone = sum(
        len(line) + 1
        for line in text.split(b"\n")
        if line.startswith((b"outagewatch_probe_failures_total{", b"outagewatch_probe_failure_"))
        or line.endswith(b" outagewatch_probe_failure_reasons_total counter")
        or line.startswith(b"# HELP outagewatch_probe_failure_reasons_total ")
    )
    before = sum(
        len(
            f'outagewatch_probe_failures_total{{probe="{probe}",reason="{reason}",'
            f'service="{service}",sub_reason="{sub_reason}"}} 1.0\n'
        )
        for service, probe, reason, sub_reason in failed
    )
    return ours, ours - gone + before


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
        worst, worst_before = measure_worst(count)
        rows.append(
            Row(
                f"/metrics bytes per target at {count:,} targets, worst case (every probe "
                "failed with all 7 HTTP reasons)",
                f"{worst / count:.0f}",
                "the same with the reasons per probe (before, computed)",
                f"{worst_before / count:.0f}",
                f"{worst / worst_before:.2f}x",
                f"<= {GOAL_BYTES_PER_TARGET} (0.5 MB per 1,000)",
                worst / count <= GOAL_BYTES_PER_TARGET,
            )
        )
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
