"""Many targets: 10,000 HTTP probes every 30 s against a local nginx, scraped every 15 s.

Reads the daemon's scheduling lateness from its own histogram
(``outagewatch_scheduler_lateness_seconds``, over the measured window only), its
CPU from /proc and its RSS at the end. The peer is blackbox_exporter driven at the
same probe rate by a load generator: its CPU and RSS (it has no schedule of its
own, so no lateness).

    PYTHONPATH=daemon python -m bench.many_targets [--targets 10000] [--seconds 180]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    LOOPBACK,
    Row,
    cpu_seconds,
    daemon_args,
    fetch,
    free_port,
    nginx_target,
    print_table,
    probes_config,
    process,
    rss_bytes,
    wait_until,
)
from bench.probe_cost import blackbox_run

INTERVAL = 30.0
SCRAPE_EVERY = 15.0
LATENESS = "outagewatch_scheduler_lateness_seconds"


def lateness_buckets(metrics: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of the lateness histogram on a /metrics page."""
    found = re.findall(rf'^{LATENESS}_bucket{{le="([^"]+)"}} (\S+)$', metrics, re.M)
    return [(float(le), float(count)) for le, count in found]


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """histogram_quantile: linear within the bucket that holds the rank."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def worst_bound(buckets: list[tuple[float, float]]) -> float:
    """The upper bound of the highest bucket any run fell in: the max is at most this."""
    total = buckets[-1][1]
    return next(bound for bound, count in buckets if count >= total)


def outagewatch_run(
    tmp: Path, target: str, targets: int, seconds: float
) -> tuple[list[tuple[float, float]], float, int]:
    """Lateness buckets over the window, CPU share of a core, RSS at the end."""
    port = free_port()
    config = tmp / "many.yml"
    config.write_text(probes_config(target, targets, f"{INTERVAL:g}s"))
    base = f"http://{LOOPBACK}:{port}"
    stop = threading.Event()

    def scraper() -> None:  # Prometheus' part: a full scrape every 15 s
        while not stop.wait(SCRAPE_EVERY):
            fetch(base + "/metrics", timeout=60)

    with process(daemon_args(config, port), tmp / "many-daemon.log", cwd=tmp) as daemon:
        wait_until(lambda: fetch(base + "/-/ready") == b"Ready\n", 120, "the daemon")
        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        try:
            time.sleep(INTERVAL + 5)  # every probe has had its first run
            before = lateness_buckets(fetch(base + "/metrics", timeout=60).decode())
            cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
            after = lateness_buckets(fetch(base + "/metrics", timeout=60).decode())
            rss = rss_bytes(daemon.pid)
        finally:
            stop.set()
            thread.join(70)
    window = [(b, c - c0) for (b, c), (_, c0) in zip(after, before, strict=True)]
    return window, (cpu1 - cpu0) / (t1 - t0), rss


def measure(targets: int = 10000, seconds: float = 180.0) -> list[Row]:
    """Lateness, CPU and RSS rows."""
    with tempfile.TemporaryDirectory(prefix="outagewatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with nginx_target(tmp) as target:
            buckets, cpu, rss = outagewatch_run(tmp, target, targets, seconds)
            peer = blackbox_run(tmp, target, targets, INTERVAL, seconds)
    runs = buckets[-1][1]
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    on_time = next(c for b, c in buckets if b == 0.05) / max(runs, 1)
    label = f"{targets:,} targets / {INTERVAL:g} s, {seconds:g} s"
    peer_cpu = peer.cpu / peer.elapsed
    return [
        Row(
            f"scheduling lateness ms, {label} "
            f"({runs:.0f} runs; max <= {worst_bound(buckets) * 1000:g})",
            f"p50 {p50 * 1000:.1f}, p99 {p99 * 1000:.1f}",
            "blackbox_exporter",
            "n/a (scheduled by Prometheus)",
            "n/a",
            "p99 < 50 ms",
            on_time >= 0.99,
        ),
        Row(
            f"CPU % of a core, {label}",
            f"{100 * cpu:.1f}",
            "blackbox_exporter (same probe rate)",
            f"{100 * peer_cpu:.1f}",
            f"{cpu / peer_cpu:.2f}x",
            "< 35 %",
            cpu < 0.35,
        ),
        Row(
            f"RSS MB, {label}",
            f"{rss / 1e6:.0f}",
            "blackbox_exporter (same probe rate)",
            f"{peer.rss / 1e6:.0f}",
            f"{rss / max(peer.rss, 1):.2f}x",
            "< 250 MB",
            rss < 250e6,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=180.0)
    args = parser.parse_args()
    print_table(measure(args.targets, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
