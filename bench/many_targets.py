"""Many targets at steady state: 10,000 HTTP probes every 30 s against a local
nginx, scraped every 15 s, the daemon's state pre-filled so every bounded buffer
is at its cap (``bench.prefilled``).

Reads the daemon's scheduling lateness from its own histogram
(``outagewatch_scheduler_lateness_seconds``, over the measured window only), its
CPU from /proc and its RSS at the end, and compares the RSS with the computed
total (``bench.memory``: a 10-probe daemon's RSS plus each per-target structure's
bytes). The peer is blackbox_exporter driven at the same probe rate by a load
generator: its CPU and RSS (it has no schedule of its own, so no lateness).
``--soak 1h`` runs the daemon that long instead, sampling RSS, open fds and
asyncio tasks every 30 s, and prints each one's slope.

    PYTHONPATH=daemon python -m bench.many_targets [--targets 10000] [--seconds 180] [--soak 1h]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from bench import memory
from bench.common import (
    LOOPBACK,
    Row,
    cpu_seconds,
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


REPO = Path(__file__).resolve().parent.parent
SAMPLE_EVERY = 30.0
FIXED_TARGETS = 10  # the daemon whose RSS is the fixed part of the computed total


def prefilled_args(config: Path, port: int, tasks_file: Path, prefill: bool = True) -> list[str]:
    """``bench.prefilled``: the daemon with its state pre-filled to steady state."""
    return [
        sys.executable,
        "-m",
        "bench.prefilled",
        "--config.file",
        str(config),
        "--web.listen-address",
        f"{LOOPBACK}:{port}",
        "--tasks-file",
        str(tasks_file),
        *([] if prefill else ["--no-prefill"]),
    ]


def bench_env() -> dict[str, str]:
    """The environment with this repository's ``bench`` and ``daemon`` importable."""
    path = os.pathsep.join([str(REPO), str(REPO / "daemon"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


@dataclass(frozen=True)
class Sample:
    """One look at the daemon: seconds since measuring began, RSS, open fds, asyncio tasks."""

    seconds: float
    rss: int
    fds: int
    tasks: int


def look(pid: int, tasks_file: Path, since: float) -> Sample:
    lines = tasks_file.read_text().split()
    tasks = int(lines[-1]) if lines else 0
    fds = sum(1 for _ in Path(f"/proc/{pid}/fd").iterdir())
    return Sample(time.monotonic() - since, rss_bytes(pid), fds, tasks)


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return 3600.0 * cov / var if var else 0.0


@dataclass(frozen=True)
class DaemonRun:
    """Lateness buckets over the window, CPU share of a core, samples, the last scrape's
    size (uncompressed) and the seconds it took to fetch."""

    buckets: list[tuple[float, float]]
    cpu: float
    samples: list[Sample]
    scrape_bytes: int
    scrape_seconds: float

    @property
    def rss(self) -> int:
        return self.samples[-1].rss


def outagewatch_run(
    tmp: Path,
    target: str,
    targets: int,
    seconds: float,
    sample_every: float = SAMPLE_EVERY,
    prefill: bool = True,
    soak_log: TextIO | None = None,
) -> DaemonRun:
    """The pre-filled daemon probing ``targets`` every 30 s for ``seconds`` after a first round."""
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix=f"many-{targets}-", dir=tmp))  # its own store
    config = tmp / "many.yml"
    config.write_text(probes_config(target, targets, f"{INTERVAL:g}s"))
    tasks_file = tmp / "tasks.txt"
    tasks_file.write_text("")
    base = f"http://{LOOPBACK}:{port}"
    stop = threading.Event()

    def scraper() -> None:  # Prometheus' part: a full scrape every 15 s
        while not stop.wait(SCRAPE_EVERY):
            fetch(base + "/metrics", timeout=60)

    args = prefilled_args(config, port, tasks_file, prefill)
    with process(args, tmp / "many-daemon.log", cwd=tmp, env=bench_env()) as daemon:
        wait_until(lambda: fetch(base + "/-/ready") == b"Ready\n", 600, "the daemon")
        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        try:
            time.sleep(INTERVAL + 5)  # every probe has had its first run
            before = lateness_buckets(fetch(base + "/metrics", timeout=60).decode())
            cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
            samples = [look(daemon.pid, tasks_file, t0)]
            while time.monotonic() - t0 < seconds:
                time.sleep(max(0.0, min(sample_every, seconds - (time.monotonic() - t0))))
                samples.append(look(daemon.pid, tasks_file, t0))
                if soak_log is not None:  # a long soak's partial record if it is cut short
                    print(samples[-1], file=soak_log, flush=True)
            cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
            scrape_started = time.monotonic()
            page = fetch(base + "/metrics", timeout=60)
            scrape = time.monotonic() - scrape_started
            after = lateness_buckets(page.decode())
        finally:
            stop.set()
            thread.join(70)
    window = [(b, c - c0) for (b, c), (_, c0) in zip(after, before, strict=True)]
    return DaemonRun(window, (cpu1 - cpu0) / (t1 - t0), samples, len(page), scrape)


def fixed_rss(tmp: Path, target: str) -> int:
    """RSS of the pre-filled daemon with a handful of probes: what does not grow with targets."""
    run = outagewatch_run(tmp, target, FIXED_TARGETS, 10.0, sample_every=10.0)
    return run.rss


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measure(targets: int = 10000, seconds: float = 180.0, soak: float | None = None) -> list[Row]:
    """Lateness, CPU and RSS rows at steady state; the soak's slopes with ``soak``."""
    structures = memory.measure_structures()
    with tempfile.TemporaryDirectory(prefix="outagewatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with nginx_target(tmp) as target:
            fixed = fixed_rss(tmp, target)
            run = outagewatch_run(
                tmp, target, targets, soak or seconds, soak_log=sys.stderr if soak else None
            )
            load = load_average()
            peer = None if soak else blackbox_run(tmp, target, targets, INTERVAL, seconds)
    buckets = run.buckets
    runs = buckets[-1][1]
    p50, p99 = quantile(buckets, 0.5), quantile(buckets, 0.99)
    on_time = next(c for b, c in buckets if b == 0.05) / max(runs, 1)
    label = f"{targets:,} targets / {INTERVAL:g} s, steady state, {soak or seconds:g} s"
    computed = memory.steady_state_bytes(targets, fixed, structures)
    rows = [
        Row(
            f"scheduling lateness ms, {label} "
            f"({runs:.0f} runs; max <= {worst_bound(buckets) * 1000:g}; load {load})",
            f"p50 {p50 * 1000:.1f}, p99 {p99 * 1000:.1f}",
            "blackbox_exporter",
            "n/a (scheduled by Prometheus)",
            "n/a",
            "p99 < 50 ms",
            on_time >= 0.99,
        ),
        Row(
            f"RSS MB, {label}, against the computed total",
            f"{run.rss / 1e6:.0f}",
            f"computed: {fixed / 1e6:.0f} MB fixed + per-target budgets measured",
            f"{computed / 1e6:.0f}",
            f"{run.rss / computed:.2f}x",
            "< 250 MB",
            run.rss < memory.GOAL_BYTES,
        ),
    ]
    if peer is not None:
        peer_cpu = peer.cpu / peer.elapsed
        rows += [
            Row(
                f"CPU % of a core, {label} (load {load})",
                f"{100 * run.cpu:.1f}",
                "blackbox_exporter (same probe rate)",
                f"{100 * peer_cpu:.1f}",
                f"{run.cpu / peer_cpu:.2f}x",
                "< 35 %",
                run.cpu < 0.35,
            ),
            Row(
                f"RSS MB, {label}",
                f"{run.rss / 1e6:.0f}",
                "blackbox_exporter (same probe rate)",
                f"{peer.rss / 1e6:.0f}",
                f"{run.rss / max(peer.rss, 1):.2f}x",
                "< 250 MB",
                run.rss < memory.GOAL_BYTES,
            ),
        ]
    else:
        rows.append(
            Row(
                f"CPU % of a core, {label} (load {load})",
                f"{100 * run.cpu:.1f}",
                "n/a",
                "n/a",
                "n/a",
                "< 35 %",
                run.cpu < 0.35,
            )
        )
    if soak:
        first, last = run.samples[0], run.samples[-1]
        # fds and tasks move with the probes in flight at the sampled moment (a few
        # to tens): over an hour that noise is a few per hour of slope, a leak is not.
        for name, unit, value, goal in (
            ("RSS", "MB", lambda s: s.rss / 1e6, 5.0),
            ("open fds", "fds", lambda s: float(s.fds), 10.0),
            ("asyncio tasks", "tasks", lambda s: float(s.tasks), 10.0),
        ):
            slope = slope_per_hour([(s.seconds, value(s)) for s in run.samples])
            rows.append(
                Row(
                    f"soak {name} slope {unit}/h ({len(run.samples)} samples every "
                    f"{SAMPLE_EVERY:g} s; first {value(first):.0f}, last {value(last):.0f})",
                    f"{slope:+.2f}",
                    "n/a",
                    "n/a",
                    "n/a",
                    f"slope within ±{goal:g} {unit}/h over 1 h",
                    abs(slope) < goal,
                )
            )
    return rows


def duration(text: str) -> float:
    """Seconds of ``90s``, ``30m``, ``1h`` (or plain seconds)."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--soak", type=duration, help="run this long (1h, 30m) sampling RSS")
    args = parser.parse_args()
    print_table(measure(args.targets, args.seconds, args.soak))
    return 0


if __name__ == "__main__":
    sys.exit(main())
