"""Growth with targets: CPU, RSS, lateness and scrape at 1k, 5k, 10k and 20k targets.

Each count runs the pre-filled daemon at steady state (``bench.many_targets``:
30 s interval, scraped every 15 s), then a least-squares line per 1,000 targets
for CPU and RSS, and the largest target count one process holds within half a
core and 500 MB by that line.

    PYTHONPATH=daemon python -m bench.growth [--targets 1000 5000 10000 20000] [--seconds 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import nginx_target
from bench.many_targets import load_average, outagewatch_run, quantile

CPU_LIMIT = 0.5  # of a core
RSS_LIMIT = 500e6


@dataclass(frozen=True)
class Point:
    targets: int
    cpu: float
    rss: int
    p99: float
    scrape_bytes: int
    scrape_seconds: float
    load: str


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope)."""
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var
    return mean_y - slope * mean_x, slope


def measure(counts: list[int], seconds: float) -> list[Point]:
    points = []
    with tempfile.TemporaryDirectory(prefix="outagewatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with nginx_target(tmp) as target:
            for targets in counts:
                print(f"growth: {targets} targets ...", file=sys.stderr, flush=True)
                run = outagewatch_run(tmp, target, targets, seconds)
                points.append(
                    Point(
                        targets,
                        run.cpu,
                        run.rss,
                        quantile(run.buckets, 0.99),
                        run.scrape_bytes,
                        run.scrape_seconds,
                        load_average(),
                    )
                )
    return points


def print_growth(points: list[Point]) -> None:
    print(
        "| targets | CPU % of a core | RSS MB | lateness p99 ms | scrape MB | "
        "scrape bytes per target | scrape s | load |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for p in points:
        print(
            f"| {p.targets:,} | {100 * p.cpu:.1f} | {p.rss / 1e6:.0f} | {1000 * p.p99:.1f} | "
            f"{p.scrape_bytes / 1e6:.2f} | {p.scrape_bytes / p.targets:.0f} | "
            f"{p.scrape_seconds:.2f} | {p.load} |"
        )
    if len(points) < 2:
        return
    xs = [p.targets / 1000 for p in points]
    cpu0, cpu_slope = fit(xs, [p.cpu for p in points])
    rss0, rss_slope = fit(xs, [float(p.rss) for p in points])
    _, bytes_slope = fit(xs, [float(p.scrape_bytes) for p in points])
    print()
    print(
        f"per 1,000 targets: CPU {100 * cpu_slope:.2f} % of a core (intercept "
        f"{100 * cpu0:.1f} %), RSS {rss_slope / 1e6:.1f} MB (intercept {rss0 / 1e6:.0f} MB), "
        f"scrape {bytes_slope / 1e6:.3f} MB"
    )
    by_cpu = (CPU_LIMIT - cpu0) / cpu_slope * 1000 if cpu_slope > 0 else float("inf")
    by_rss = (RSS_LIMIT - rss0) / rss_slope * 1000 if rss_slope > 0 else float("inf")
    print(
        f"largest in one process: {min(by_cpu, by_rss):,.0f} targets "
        f"(half a core at {by_cpu:,.0f}, 500 MB at {by_rss:,.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, 5000, 10000, 20000])
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    print_growth(measure(args.targets, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
