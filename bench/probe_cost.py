"""Probe cost: outagewatch against Debian's prometheus-blackbox-exporter.

Both probe the same local nginx over a fresh connection per probe, at the same
rate: outagewatch as scheduled probes through its whole pipeline (and a scrape
of its /metrics), blackbox_exporter as /probe requests from a paced load
generator in another process. The figure is each prober's CPU seconds per
1,000 probes, read from /proc. blackbox_exporter runs twice a round: with Go's
default (a thread per core) and with ``GOMAXPROCS=1`` (one core, as the daemon
has); runs alternate with outagewatch's so each pair sees the same machine, and a
ratio is the median of the rounds' ratios with their range, the load average
beside it.

    PYTHONPATH=daemon python -m bench.probe_cost [--targets 1000] [--interval 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    Figure,
    Row,
    counter_sum,
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

BLACKBOX = "prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """
modules:
  http_2xx:
    prober: http
    timeout: 2s
    http:
      preferred_ip_protocol: ip4
"""
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


def outagewatch_cost(
    tmp: Path, target: str, targets: int, interval: float, seconds: float, loop: str
) -> float:
    """CPU seconds per 1,000 probes of the daemon probing ``targets`` every ``interval``."""
    port = free_port()
    config = tmp / "probes.yml"
    config.write_text(probes_config(target, targets, f"{interval}s"))
    base = f"http://{LOOPBACK}:{port}"
    args = [*daemon_args(config, port), "--event-loop", loop]
    with process(args, tmp / "daemon.log", cwd=tmp) as daemon:
        wait_until(lambda: fetch(base + "/-/ready") == b"Ready\n", 30, "the daemon")
        time.sleep(min(interval, 60.0) * 1.2 + 1)  # every probe has run once
        probes0 = counter_sum(fetch(base + "/metrics").decode(), "outagewatch_probes_total")
        cpu0 = cpu_seconds(daemon.pid)
        time.sleep(seconds)
        probes1 = counter_sum(fetch(base + "/metrics").decode(), "outagewatch_probes_total")
        cpu1 = cpu_seconds(daemon.pid)
    return 1000 * (cpu1 - cpu0) / max(probes1 - probes0, 1)


@dataclass(frozen=True)
class BlackboxRun:
    """What blackbox_exporter spent answering the load generator's /probe requests."""

    cpu: float
    probes: int
    elapsed: float
    rss: int


# blackbox_exporter as packaged, and held to one core like the daemon's event loop.
BLACKBOX_VARIANTS: dict[str, dict[str, str]] = {"default": {}, "GOMAXPROCS=1": {"GOMAXPROCS": "1"}}


def blackbox_run(
    tmp: Path,
    target: str,
    targets: int,
    interval: float,
    seconds: float,
    env: dict[str, str] | None = None,
) -> BlackboxRun:
    """blackbox_exporter probing ``targets`` each ``interval``, driven by the load generator."""
    port = free_port()
    config = tmp / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG)
    args = [
        BLACKBOX,
        f"--config.file={config}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=error",
    ]
    template = "/probe?module=http_2xx&target=" + urllib.parse.quote(f"{target}/ok?t=", safe="")
    template += "{i}"
    rate = targets / interval

    def load(duration: float) -> dict[str, Any]:
        out = subprocess.run(
            [
                sys.executable,
                str(LOADGEN),
                str(port),
                template,
                str(rate),
                str(duration),
                "8",
                str(targets),
            ],
            capture_output=True,
            text=True,
            timeout=duration * 3 + 60,
            check=True,
        )
        summary: dict[str, Any] = json.loads(out.stdout)
        return summary

    with process(args, tmp / "blackbox.log", env={**os.environ, **(env or {})}) as exporter:
        base = f"http://{LOOPBACK}:{port}"
        wait_until(lambda: fetch(base + "/-/healthy") is not None, 15, "blackbox_exporter")
        load(2.0)  # warm-up
        cpu0, t0 = cpu_seconds(exporter.pid), time.monotonic()
        summary = load(seconds)
        cpu1, t1 = cpu_seconds(exporter.pid), time.monotonic()
        rss = rss_bytes(exporter.pid)
    ok = int(summary["statuses"].get("200", 0))
    return BlackboxRun(cpu1 - cpu0, ok, t1 - t0, rss)


def blackbox_cost(
    tmp: Path, target: str, targets: int, interval: float, seconds: float, variant: str
) -> float:
    """CPU seconds per 1,000 probes of blackbox_exporter at the same rate."""
    env = BLACKBOX_VARIANTS[variant]
    run = blackbox_run(tmp, target, targets, interval, seconds, env)
    return 1000 * run.cpu / max(run.probes, 1)


def load_1m() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(
    targets: int = 1000, interval: float = 5.0, seconds: float = 15.0, runs: int = 3
) -> list[Row]:
    """The probe-cost rows: each loop against each blackbox_exporter variant."""
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    ours: dict[str, list[float]] = {loop: [] for loop in loops}
    theirs: dict[str, list[float]] = {variant: [] for variant in BLACKBOX_VARIANTS}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="outagewatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with nginx_target(tmp) as target:
            for _ in range(runs):  # one round: each side once, alternating
                for loop in loops:
                    loads.append(load_1m())
                    ours[loop].append(
                        outagewatch_cost(tmp, target, targets, interval, seconds, loop)
                    )
                for variant in BLACKBOX_VARIANTS:
                    loads.append(load_1m())
                    theirs[variant].append(
                        blackbox_cost(tmp, target, targets, interval, seconds, variant)
                    )
    load = f"load {min(loads):.1f}-{max(loads):.1f}"
    rows = []
    for loop in loops:
        mine = Figure(tuple(ours[loop]))
        for variant, figures in theirs.items():
            peer = Figure(tuple(figures))
            # A ratio per round: its two sides ran back to back, under the same load.
            ratio = Figure(tuple(o / t for o, t in zip(ours[loop], figures, strict=True)))
            rows.append(
                Row(
                    f"probe CPU s / 1,000 probes ({targets} targets / {interval:g} s, "
                    f"{loop}; {load})",
                    mine.show("{:.3f}"),
                    f"blackbox_exporter, {variant}",
                    peer.show("{:.3f}"),
                    ratio.show("{:.2f}", "x"),
                    "<= 0.5x",
                    ratio.median <= 0.5,
                )
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", "daemon")
    print_table(measure(args.targets, args.interval, args.seconds, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
