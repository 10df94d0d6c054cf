"""Run every benchmark and print one results table: figure, peer, ratio, goal.

Loopback only; each benchmark is bounded in time (about 45 minutes in all on two
cores; time to page alone takes 12, the detection cross-validation about 3).
``--quick`` runs each briefly, to see that they work, not to quote. ``--soak 1h``
runs the 10,000-target daemon that long, sampling RSS, fds and tasks.

    PYTHONPATH=daemon python -m bench [--quick] [--soak 1h]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import (
    bench_detection,
    bench_reports,
    cv_detection,
    growth,
    many_targets,
    memory,
    probe_cost,
    scrape_cost,
    time_to_page,
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
    parser.add_argument(
        "--soak", type=many_targets.duration, help="run the many-targets daemon this long (1h)"
    )
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    started = time.monotonic()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("probe cost", lambda: probe_cost.measure(seconds=5 if args.quick else 15, runs=runs)),
        ("memory budgets", memory.rows),
        (
            "many targets",
            lambda: many_targets.measure(
                targets=1000 if args.quick else 10000,
                seconds=20 if args.quick else 180,
                soak=args.soak,
            ),
        ),
        ("scrape cost", lambda: scrape_cost.measure(runs=2 if args.quick else 5)),
        (
            "report intake",
            lambda: bench_reports.measure(runs=runs, count=2000 if args.quick else 10_000),
        ),
        ("detection", bench_detection.measure),
        ("detection cross-validated", cv_detection.measure),
        (
            "time to page",
            lambda: time_to_page.measure(
                runs=2 if args.quick else 5,
                quiet=90 if args.quick else 300,
                services=4 if args.quick else 20,
            ),
        ),
    ]
    for name, step in steps:
        print(f"running: {name} ...", file=sys.stderr, flush=True)
        rows.extend(step())
    print("running: growth ...", file=sys.stderr, flush=True)
    counts = [500, 1000] if args.quick else [1000, 5000, 10000, 20000]
    points = growth.measure(counts, seconds=10 if args.quick else 60)
    print(f"machine: {machine()}")
    print(f"took {time.monotonic() - started:.0f} s; medians of {runs} runs (min-max)")
    print(f"load average at the end: {many_targets.load_average()}")
    print()
    print_table(rows)
    print()
    growth.print_growth(points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
