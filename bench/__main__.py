"""Run every benchmark and print one results table: figure, peer, ratio, goal.

Loopback only; each benchmark is bounded in time (about 12 minutes in all on two
cores; the detection cross-validation adds about 3). ``--quick`` runs each briefly,
to see that they work, not to quote.

    PYTHONPATH=daemon python -m bench [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

from bench import (
    bench_detection,
    bench_reports,
    cv_detection,
    many_targets,
    probe_cost,
    scrape_cost,
)
from bench.common import Row, print_table


def machine() -> str:
    """One line about where the figures came from."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    started = time.monotonic()
    rows: list[Row] = []
    steps = [
        ("probe cost", lambda: probe_cost.measure(seconds=5 if args.quick else 15, runs=runs)),
        (
            "many targets",
            lambda: many_targets.measure(
                targets=1000 if args.quick else 10000, seconds=20 if args.quick else 180
            ),
        ),
        ("scrape cost", lambda: scrape_cost.measure(runs=2 if args.quick else 5)),
        (
            "report intake",
            lambda: bench_reports.measure(runs=runs, count=2000 if args.quick else 10_000),
        ),
        ("detection", bench_detection.measure),
        ("detection cross-validated", cv_detection.measure),
    ]
    for name, step in steps:
        print(f"running: {name} ...", file=sys.stderr, flush=True)
        rows.extend(step())
    print(f"machine: {machine()}")
    print(f"took {time.monotonic() - started:.0f} s; medians of {runs} runs (min-max)")
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
