"""Report intake benchmark: reports/s with durable acks, latency p50/p99.

Starts ``outagewatch run`` as its own process on a loopback port with a
temporary store, then drives it from this process with many concurrent
keep-alive clients, each report from a new reporter so every one is stored
(a 202 only after the grouped commit). Bounded by a report count and a time
limit. Prints throughput, latency percentiles, the daemon's CPU use and how
many reports shared one commit.

    PYTHONPATH=daemon python -m bench.bench_reports [--clients 64] [--reports 20000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import Figure, Row

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


BARE_SERVER = """
import sys
from aiohttp import web
async def accept(_request):
    return web.json_response({"accepted": 1}, status=202)
app = web.Application()
app.router.add_post("/api/v1/reports", accept)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


@dataclass(frozen=True)
class IntakeRun:
    """One measured burst: what was acknowledged, how fast, and the server's CPU."""

    acked: int
    elapsed: float
    latencies: list[float]
    statuses: dict[int, int]
    server_cpu: float
    loader_cpu: float
    commits: float

    @property
    def per_second(self) -> float:
        return self.acked / self.elapsed

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies, 0.99) * 1000


def measure_burst(
    pid: int, base: str, port: int, clients: int, count: int, seconds: float, batch: int
) -> IntakeRun:
    """Warm up, then drive one burst at a server that is ready."""
    asyncio.run(drive(port, clients, 1000, 10, 1, offset=10**9))
    commits_before = asyncio.run(commits(base))
    cpu_before = cpu_seconds(pid)
    loader_before = time.process_time()
    latencies, statuses, elapsed, acked = asyncio.run(
        drive(port, clients, count * batch, seconds, batch, 0)
    )
    server_cpu = cpu_seconds(pid) - cpu_before
    loader_cpu = time.process_time() - loader_before
    grouped = asyncio.run(commits(base)) - commits_before
    return IntakeRun(acked, elapsed, latencies, statuses, server_cpu, loader_cpu, grouped)


def intake_run(
    clients: int, count: int, seconds: float, batch: int = 1, synchronous: str = "full"
) -> IntakeRun:
    """The daemon's intake with its store, every 202 after the commit."""
    workdir = Path(tempfile.mkdtemp(prefix="outagewatch-bench-"))
    (workdir / "tokens").write_text(TOKEN + "\n")
    (workdir / "secret").write_text("bench-secret\n")
    config = workdir / "config.yml"
    config.write_text(
        CONFIG.format(
            db=workdir / "reports.db",
            synchronous=synchronous,
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
        return measure_burst(daemon.pid, base, port, clients, count, seconds, batch)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


def bare_run(clients: int, count: int, seconds: float) -> IntakeRun:
    """The peer: a bare aiohttp handler answering 202 without storing anything."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        return measure_burst(server.pid, base, port, clients, count, seconds, 1)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def measure(
    runs: int = 3, clients: int = 64, count: int = 10_000, seconds: float = 20.0
) -> list[Row]:
    """Reports/s and p99 of the daemon's durable intake against a bare 202 handler."""
    ours = [intake_run(clients, count, seconds) for _ in range(runs)]
    theirs = [bare_run(clients, count, seconds) for _ in range(runs)]
    rate, peer_rate = (
        Figure(tuple(r.per_second for r in ours)),
        Figure(tuple(r.per_second for r in theirs)),
    )
    p99, peer_p99 = Figure(tuple(r.p99_ms for r in ours)), Figure(tuple(r.p99_ms for r in theirs))
    label = f"{clients} clients, 1 report a request, {count:,} requests"
    return [
        Row(
            f"report intake reports/s, durable 202 ({label})",
            rate.show("{:,.0f}"),
            "bare aiohttp 202 handler, no store",
            peer_rate.show("{:,.0f}"),
            f"{rate.median / peer_rate.median:.2f}x",
            ">= 5,000/s",
            rate.median >= 5000,
        ),
        Row(
            f"report intake p99 ms ({label})",
            p99.show("{:.1f}"),
            "bare aiohttp 202 handler, no store",
            peer_p99.show("{:.1f}"),
            f"{p99.median / peer_p99.median:.2f}x",
            "<= 50 ms",
            p99.median <= 50,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--reports", type=int, default=20_000, help="requests to send")
    parser.add_argument("--seconds", type=float, default=30.0, help="time limit")
    parser.add_argument("--batch", type=int, default=1, help="reports per request")
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    args = parser.parse_args()
    run = intake_run(args.clients, args.reports, args.seconds, args.batch, args.synchronous)
    elapsed, acked = run.elapsed, run.acked
    print(
        f"report intake: {acked} reports acknowledged (202, committed) in {elapsed:.2f}s "
        f"by {args.clients} clients, batch {args.batch}, synchronous={args.synchronous}"
    )
    print(
        f"  throughput   {acked / elapsed:,.0f} reports/s "
        f"({len(run.latencies) / elapsed:,.0f} req/s)"
    )
    print(
        f"  latency      p50 {percentile(run.latencies, 0.50) * 1000:.1f} ms, "
        f"p99 {run.p99_ms:.1f} ms"
    )
    print(f"  statuses     {dict(sorted(run.statuses.items()))}")
    print(f"  daemon CPU   {run.server_cpu / elapsed * 100:.0f}% of one core")
    print(f"  loader CPU   {run.loader_cpu / elapsed * 100:.0f}% of one core")
    if run.commits:
        print(f"  commits      {run.commits:.0f} ({acked / run.commits:.1f} reports per commit)")
    return 0 if run.statuses.get(202, 0) == len(run.latencies) else 1


if __name__ == "__main__":
    sys.exit(main())
