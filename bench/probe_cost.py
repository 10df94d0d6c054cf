"""Probe cost: outagewatch against Debian's prometheus-blackbox-exporter.

Both probe the same local nginx over a fresh connection per probe, at the same
rate: outagewatch as scheduled probes through its whole pipeline (and a scrape
of its /metrics), blackbox_exporter as /probe requests from a paced load
generator in another process. The figure is each prober's CPU seconds per
1,000 probes, read from /proc; runs alternate so both see the same machine.

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


def blackbox_run(
    tmp: Path, target: str, targets: int, interval: float, seconds: float
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

    with process(args, tmp / "blackbox.log") as exporter:
        base = f"http://{LOOPBACK}:{port}"
        wait_until(lambda: fetch(base + "/-/healthy") is not None, 15, "blackbox_exporter")
        load(2.0)  # warm-up
        cpu0, t0 = cpu_seconds(exporter.pid), time.monotonic()
        summary = load(seconds)
        cpu1, t1 = cpu_seconds(exporter.pid), time.monotonic()
        rss = rss_bytes(exporter.pid)
    ok = int(summary["statuses"].get("200", 0))
    return BlackboxRun(cpu1 - cpu0, ok, t1 - t0, rss)


def blackbox_cost(tmp: Path, target: str, targets: int, interval: float, seconds: float) -> float:
    """CPU seconds per 1,000 probes of blackbox_exporter at the same rate."""
    run = blackbox_run(tmp, target, targets, interval, seconds)
    return 1000 * run.cpu / max(run.probes, 1)


def measure(
    targets: int = 1000, interval: float = 5.0, seconds: float = 15.0, runs: int = 3
) -> list[Row]:
    """The probe-cost rows: asyncio loop, and uvloop when it is installed."""
    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        pass
    ours: dict[str, list[float]] = {loop: [] for loop in loops}
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="outagewatch-bench-") as tmp_name:
        tmp = Path(tmp_name)
        with nginx_target(tmp) as target:
            for _ in range(runs):
                for loop in loops:
                    ours[loop].append(
                        outagewatch_cost(tmp, target, targets, interval, seconds, loop)
                    )
                theirs.append(blackbox_cost(tmp, target, targets, interval, seconds))
    peer = Figure(tuple(theirs))
    rows = []
    for loop in loops:
        mine = Figure(tuple(ours[loop]))
        ratio = mine.median / peer.median
        rows.append(
            Row(
                f"probe CPU s / 1,000 probes ({targets} targets / {interval:g} s, {loop})",
                mine.show("{:.3f}"),
                "blackbox_exporter",
                peer.show("{:.3f}"),
                f"{ratio:.2f}x",
                "<= 0.5x",
                ratio <= 0.5,
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
