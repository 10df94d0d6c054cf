"""Report intake benchmark: reports/s with durable acks, latency p50/p99.

Starts ``outagewatch run`` as its own process on a loopback port with a
temporary store, then drives it from this process with many concurrent
keep-alive clients, each report from a new reporter so every one is stored
(a 202 only after the grouped commit). Bounded by a report count and a time
limit. Prints throughput, latency percentiles, the daemon's CPU use and how
many reports shared one commit.

    python bench/bench_reports.py [--clients 64] [--reports 20000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

TOKEN = "bench-token"
CONFIG = """
services:
  claude: {{}}
storage:
  path: {db}
  synchronous: {synchronous}
reports:
  tokens_file: {tokens}
  hash_secret_file: {secret}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def daemon_command() -> list[str]:
    script = Path(sys.executable).parent / "outagewatch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "outagewatch.cli"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_ready(base: str, deadline: float) -> None:
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/-/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the daemon did not become ready")


def request_bytes(port: int, first: int, batch: int) -> bytes:
    """One keep-alive POST, written by hand: aiohttp's client would cost more CPU than
    the daemon under test and, on two cores, measure itself."""
    items = ",".join(
        f'{{"service":"claude","problem":"app","reporter":"r{n}"}}'
        for n in range(first, first + batch)
    )
    body = (f"[{items}]" if batch > 1 else items).encode()
    head = (
        f"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def drive(
    port: int, clients: int, count: int, seconds: float, batch: int, offset: int
) -> tuple[list[float], dict[int, int], float, int]:
    """Post ``count`` reports from ``clients`` connections; latencies, statuses, elapsed, acked."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_id = offset
    acked = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal next_id, acked
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_id < offset + count and time.monotonic() < deadline:
                first = next_id
                next_id += batch
                started = time.perf_counter()
                writer.write(request_bytes(port, first, batch))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    acked += batch
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return latencies, statuses, time.perf_counter() - started, acked


async def commits(base: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("outagewatch_store_commit_duration_seconds_count"):
            return float(line.split()[-1])
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 1000) - 1] if len(values) > 1 else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--reports", type=int, default=20_000, help="requests to send")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit")
    parser.add_argument("--batch", type=int, default=1, help="reports per request")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="outagewatch-bench-"))
    (workdir / "tokens").write_text(TOKEN + "\n")
    (workdir / "secret").write_text("bench-secret\n")
    config = workdir / "config.yml"
    config.write_text(
        CONFIG.format(
            db=workdir / "reports.db",
            synchronous=args.synchronous,
            tokens=workdir / "tokens",
            secret=workdir / "secret",
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen(
        [
            *daemon_command(),
            *("run", "--config.file", str(config)),
            *("--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        asyncio.run(wait_ready(base, time.monotonic() + 15))
        # Warm-up: connections, first pages of the database.
        asyncio.run(drive(port, args.clients, 1000, 10, 1, offset=10**9))
        commits_before = asyncio.run(commits(base))
        cpu_before = cpu_seconds(daemon.pid)
        loader_before = time.process_time()
        latencies, statuses, elapsed, acked = asyncio.run(
            drive(port, args.clients, args.reports * args.batch, args.seconds, args.batch, 0)
        )
        daemon_cpu = cpu_seconds(daemon.pid) - cpu_before
        loader_cpu = time.process_time() - loader_before
        grouped = asyncio.run(commits(base)) - commits_before
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"report intake: {acked} reports acknowledged (202, committed) in {elapsed:.2f}s "
        f"by {args.clients} clients, batch {args.batch}, synchronous={args.synchronous}"
    )
    print(
        f"  throughput   {acked / elapsed:,.0f} reports/s ({len(latencies) / elapsed:,.0f} req/s)"
    )
    print(
        f"  latency      p50 {percentile(latencies, 0.50) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms"
    )
    print(f"  statuses     {dict(sorted(statuses.items()))}")
    print(f"  daemon CPU   {daemon_cpu / elapsed * 100:.0f}% of one core")
    print(f"  loader CPU   {loader_cpu / elapsed * 100:.0f}% of one core")
    if grouped:
        print(f"  commits      {grouped:.0f} ({acked / grouped:.1f} reports per commit)")
    return 0 if statuses.get(202, 0) == len(latencies) else 1


if __name__ == "__main__":
    sys.exit(main())
