"""Probe throughput and CPU cost: N local HTTP targets, the whole daemon pipeline.

Runs a target server and the daemon as separate processes on loopback, lets the
daemon probe for a while, and reads the daemon's CPU time from /proc.

    python bench/bench_probes.py --targets 1000 --interval 5s --seconds 60
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

TARGET_SERVER = """
import sys
from aiohttp import web
async def ok(_r):
    return web.Response(text="ok")
app = web.Application()
app.router.add_get("/ok", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def probes_done(metrics: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^outagewatch_probes_total\{[^}]*\} (\S+)$", metrics, re.M)
    )


def wait_until(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("timed out waiting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", default="5s")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    target_port, daemon_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yml"
        lines = ["scheduler: {max_concurrency: 1000}", "services:", "  bench:", "    probes:"]
        for i in range(args.targets):
            lines.append(
                f"      t{i}: {{kind: http, url: 'http://127.0.0.1:{target_port}/ok?t={i}', "
                f"interval: {args.interval}, timeout: 2s}}"
            )
        config.write_text("\n".join(lines) + "\n")
        target = subprocess.Popen([sys.executable, "-c", TARGET_SERVER, str(target_port)])
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "outagewatch.cli",
                "run",
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{daemon_port}",
                "--log.level",
                "warning",
            ],
            stderr=subprocess.DEVNULL,
        )
        metrics_url = f"http://127.0.0.1:{daemon_port}/metrics"
        try:
            wait_until(lambda: scrape(metrics_url) is not None, 30)
            # Let every probe run once before measuring (first runs spread over the interval).
            time.sleep(min(60.0, float(args.interval.rstrip("s"))) + 2)
            probes0, cpu0, t0 = (
                probes_done(scrape(metrics_url)),
                cpu_seconds(daemon.pid),
                time.monotonic(),
            )
            time.sleep(args.seconds)
            cpu1, t1 = cpu_seconds(daemon.pid), time.monotonic()
            probes1 = probes_done(scrape(metrics_url))
            rss = rss_bytes(daemon.pid)
        finally:
            daemon.terminate()
            target.terminate()
            daemon.wait(10)
            target.wait(10)
    probes = probes1 - probes0
    cpu = cpu1 - cpu0
    elapsed = t1 - t0
    print(f"targets={args.targets} interval={args.interval} measured={elapsed:.0f}s")
    print(f"probes/s            {probes / elapsed:10.1f}")
    print(f"CPU per probe (ms)  {1000 * cpu / max(probes, 1):10.3f}")
    print(f"CPU % of one core   {100 * cpu / elapsed:10.1f}")
    print(f"RSS (MB)            {rss / 1e6:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
