"""Start Debian's Prometheus and Alertmanager on loopback for tests, and stop them."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def http_json(url: str, data: Any = None, timeout: float = 5.0) -> Any:
    """GET (or POST ``data`` as JSON) a loopback URL and decode the JSON answer."""
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def wait_ready(url: str, process: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the process dies."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {deadline}s")


@contextlib.contextmanager
def running(args: list[str], ready_url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server process until the block ends; its output goes to ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        try:
            wait_ready(ready_url, process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')}") from None
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def alertmanager(
    config: Path, workdir: Path, port: int | None = None, external_url: str = ""
) -> Iterator[str]:
    """Alertmanager on a loopback port, clustering off; yields its base URL.

    ``external_url``: what its notifications link to (``--web.external-url``); the
    server itself still answers at the root of the loopback port."""
    port = port or free_port()
    base = f"http://{LOOPBACK}:{port}"
    args = [
        "prometheus-alertmanager",
        f"--config.file={config}",
        f"--storage.path={workdir / 'am-data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--cluster.listen-address=",  # no gossip port on all interfaces
        "--log.level=warn",
    ]
    if external_url:
        args += [f"--web.external-url={external_url}", "--web.route-prefix=/"]
    with running(args, f"{base}/-/ready", workdir / "alertmanager.log"):
        yield base


@contextlib.contextmanager
def prometheus(config: Path, workdir: Path, external_url: str = "") -> Iterator[str]:
    """Prometheus on a loopback port with a throwaway TSDB; yields its base URL.

    ``external_url``: what its alerts link to (``--web.external-url``)."""
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    args = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'prom-data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--log.level=warn",
    ]
    if external_url:
        args += [f"--web.external-url={external_url}", "--web.route-prefix=/"]
    with running(args, f"{base}/-/ready", workdir / "prometheus.log"):
        yield base
