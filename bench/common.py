"""What every benchmark shares: loopback processes, /proc readings, the result row."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def fetch(url: str, timeout: float = 30.0) -> bytes:
    """GET a loopback URL."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def wait_until(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``predicate`` (OSError counts as not yet) for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if predicate():
                return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def counter_sum(metrics: str, name: str) -> float:
    """Sum of every series of one counter on a /metrics page."""
    pattern = rf"^{name}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(m.group(1)) for m in re.finditer(pattern, metrics, re.M))


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log error;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""


@contextlib.contextmanager
def process(args: Sequence[str], log: Path, **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the block; SIGTERM (then SIGKILL) at the end."""
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def nginx_target(tmp: Path) -> Iterator[str]:
    """Debian's nginx answering 200 "ok" on a loopback port; yields its base URL."""
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=LOOPBACK, port=port))
    with process(["nginx", "-c", str(conf), "-p", str(tmp)], tmp / "nginx.log"):
        base = f"http://{LOOPBACK}:{port}"
        wait_until(lambda: fetch(base + "/") == b"ok\n", 10, "nginx")
        yield base


def daemon_args(config: Path, port: int) -> list[str]:
    """``outagewatch run`` with this interpreter, quiet logs."""
    return [
        sys.executable,
        "-m",
        "outagewatch.cli",
        "run",
        "--config.file",
        str(config),
        "--web.listen-address",
        f"{LOOPBACK}:{port}",
        "--log.level",
        "warning",
        "--log.format",
        "json",
    ]


def probes_config(target: str, targets: int, interval: str, extra: str = "") -> str:
    """A config of ``targets`` HTTP probes of one local target."""
    lines = [
        "scheduler: {max_concurrency: 1000}",
        extra,
        "services:",
        "  bench:",
        "    probes:",
    ]
    lines += [
        f"      t{i}: {{kind: http, url: '{target}/ok?t={i}', interval: {interval}, timeout: 2s}}"
        for i in range(targets)
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Figure:
    """A measured figure: the median of several runs and their spread."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def show(self, fmt: str, unit: str = "") -> str:
        spread = f" ({fmt.format(min(self.runs))}-{fmt.format(max(self.runs))})"
        return fmt.format(self.median) + unit + (spread if len(self.runs) > 1 else "")


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    benchmark: str
    ours: str
    peer: str
    theirs: str
    ratio: str
    goal: str
    met: bool | None


def print_table(rows: Sequence[Row]) -> None:
    """The results table, Markdown so docs/benchmarks.md can take it as it is."""
    print("| benchmark | outagewatch | peer | peer figure | ratio | goal | met |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        met = "n/a" if r.met is None else ("yes" if r.met else "no")
        print(
            f"| {r.benchmark} | {r.ours} | {r.peer} | {r.theirs} | {r.ratio} | {r.goal} | {met} |"
        )
