"""Slow and idle clients cannot take the probes' file descriptors (issue 16, row 1).

A real daemon process with the shipped fd limits; thousands of connections that
idle or send a request head a byte at a time; meanwhile a probe of a loopback
target keeps succeeding, /metrics keeps answering and the service stays ``ok``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Serve
from tests.daemon_process import DaemonProcess

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "outagewatch.service"
SLOW_CLIENTS = 2000
ATTACK_SECONDS = 16.0
SCRAPE_BOUND = 3.0  # seconds a /metrics scrape on a fresh connection may take

CONFIG = """
services:
  claude:
    probes:
      api:
        kind: http
        url: {target}/ok
        interval: 1s
        timeout: 1s
disruption:
  evaluate_interval: 1s
"""


def unit_nofile() -> int:
    match = re.search(r"^LimitNOFILE=(\d+)$", UNIT.read_text(), re.MULTILINE)
    assert match, "the shipped unit must set LimitNOFILE="
    return int(match.group(1))


def sample(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _enough_fds_here(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, "the test needs more fds"


async def _slow_client(port: int, trickle: bool, stop: asyncio.Event) -> None:
    """Open a connection and idle, or send a request head a byte at a time, never ending it."""
    with contextlib.suppress(OSError):
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 10_000
            for byte in head:
                if not trickle or stop.is_set() or writer.is_closing():
                    break
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.5)
            await stop.wait()
        finally:
            writer.close()


async def _attack(port: int, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    tasks = []
    for i in range(SLOW_CLIENTS):
        tasks.append(asyncio.create_task(_slow_client(port, i % 2 == 0, stop)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # let the connects go out
    return tasks


async def _scrape(url: str) -> tuple[float, str]:
    """One scrape on a fresh connection, as the worst-placed Prometheus would."""
    started = time.monotonic()
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=SCRAPE_BOUND * 3)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(url + "/metrics") as response,
    ):
        assert response.status == 200
        text = await response.text()
    return time.monotonic() - started, text


async def _target(serve: Serve) -> str:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    base: str = await serve(app)
    return base


async def _wait_ok(daemon: DaemonProcess) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = await daemon.metrics()
        if sample(text, "outagewatch_disruption_state", service="claude", state="ok") == 1:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"claude never became ok: {daemon.logs()[-3000:]}")


async def _flood_and_watch(daemon: DaemonProcess, port: int) -> tuple[str, list[float]]:
    """Run the attack while scraping; assert the service stays ok throughout."""
    before = await _wait_ok(daemon)
    probes_before = sample(before, "outagewatch_probes_total", service="claude", probe="api")
    assert probes_before is not None
    stop = asyncio.Event()
    tasks = await _attack(port, stop)
    latencies = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < ATTACK_SECONDS:
            took, text = await _scrape(daemon.url)
            latencies.append(took)
            assert sample(text, "outagewatch_disruption_state", service="claude", state="ok") == 1
            assert sample(text, "outagewatch_probe_success", service="claude", probe="api") == 1
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    took, after = await _scrape(daemon.url)
    probes_after = sample(after, "outagewatch_probes_total", service="claude", probe="api")
    assert probes_after is not None
    assert probes_after >= probes_before + ATTACK_SECONDS / 2  # probes kept running
    failures = [
        line
        for line in after.splitlines()
        if line.startswith("outagewatch_probe_failures_total{") and not line.endswith(" 0.0")
    ]
    assert failures == []
    assert max(latencies) < SCRAPE_BOUND, latencies
    return after, latencies


async def test_slow_clients_cannot_fake_an_outage(tmp_path: Path, serve: Serve) -> None:
    hard = unit_nofile()
    _enough_fds_here(SLOW_CLIENTS + 500)
    config = tmp_path / "outagewatch.yml"
    config.write_text(CONFIG.format(target=await _target(serve)))
    # Soft 1024 as a login shell has it, hard as the unit sets: the daemon raises soft.
    daemon = DaemonProcess(config, tmp_path / "d.log", nofile=(1024, hard))
    await daemon.start()
    try:
        after, _ = await _flood_and_watch(daemon, daemon.port)
        started = next(
            json.loads(line)
            for line in daemon.logs().splitlines()
            if line.startswith("{") and '"started"' in line
        )
        assert (started["fd_limit"], started["fd_hard_limit"]) == (hard, hard)
        cap = sample(after, "outagewatch_http_connections_limit")
        assert cap == 1024
        # More clients than the cap: the excess was closed at once.
        refused = sample(after, "outagewatch_http_connections_refused_total")
        assert refused is not None and refused >= SLOW_CLIENTS - cap
        assert sample(after, "outagewatch_http_header_timeouts_total") is not None
        logs = daemon.logs()
        assert "Too many open files" not in logs
        assert "Traceback" not in logs
    finally:
        assert await daemon.stop() == 0


async def test_at_a_fixed_1024_fd_limit_the_cap_leaves_the_probes_their_fds(
    tmp_path: Path, serve: Serve
) -> None:
    _enough_fds_here(SLOW_CLIENTS + 500)
    config = tmp_path / "outagewatch.yml"
    config.write_text(CONFIG.format(target=await _target(serve)))
    # The report's set-up: 1024 fds, soft and hard, so nothing can be raised.
    daemon = DaemonProcess(
        config, tmp_path / "d.log", nofile=(1024, 1024), args=["--web.read-header-timeout=5s"]
    )
    await daemon.start()
    try:
        after, _ = await _flood_and_watch(daemon, daemon.port)
        # 1024 - 64 reserved - 2 x 256 probes in flight.
        assert sample(after, "outagewatch_http_connections_limit") == 448
        assert "web_max_connections_lowered" in daemon.logs()
        # The held slow heads ran out of time and were closed.
        timeouts = sample(after, "outagewatch_http_header_timeouts_total")
        assert timeouts is not None and timeouts > 0
        logs = daemon.logs()
        assert "Too many open files" not in logs
        assert "Traceback" not in logs
    finally:
        assert await daemon.stop() == 0


async def test_a_trickled_request_body_times_out(tmp_path: Path) -> None:
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n  claude:\n    reports: {public: true}\n"
        f"storage:\n  path: {tmp_path / 'r.db'}\n"
    )
    daemon = DaemonProcess(config, tmp_path / "d.log", args=["--web.read-timeout=1s"])
    await daemon.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        writer.write(
            b"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\n\r\n{"
        )
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(), 10)  # until the daemon closes
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert 0.9 < time.monotonic() - started < 5
        writer.close()
    finally:
        assert await daemon.stop() == 0


ACCEPT_FLOOD = """
import asyncio, os, resource, sys
from outagewatch.logging import configure
from outagewatch.web.connections import AcceptErrorLog

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorLog(interval=1.0))
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, backlog=128)
    print(server.sockets[0].getsockname()[1], flush=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    hog = []
    try:  # use up every fd, as a leak or a flood would
        while True:
            hog.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    await asyncio.sleep(float(sys.argv[1]))

configure("info", "json")
asyncio.run(main())
"""


async def test_accept_errors_are_logged_once_per_interval_with_a_count() -> None:
    seconds = 3.5
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ACCEPT_FLOOD,
        str(seconds),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode())
    await asyncio.sleep(0.3)  # the child is out of fds now
    clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    output, _ = await asyncio.wait_for(proc.communicate(), 30)
    for _reader, writer in clients:
        writer.close()
    lines = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    accept = [line for line in lines if line["event"] == "accept_failed"]
    assert 1 <= len(accept) <= seconds + 1, accept
    assert "Too many open files" in accept[0]["error"]
    # asyncio tries accept() up to backlog times per wake-up: many failures, few lines.
    assert sum(line["count"] for line in accept) > 2 * len(accept)
    assert "Traceback" not in output.decode()


async def _tls_daemon(tmp_path: Path, ca: Any, *flags: str) -> DaemonProcess:
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(tmp_path / "tls.crt")
    cert.private_key_pem.write_to_path(tmp_path / "tls.key")
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {tmp_path / 'tls.crt'}\n"
        f"  key_file: {tmp_path / 'tls.key'}\n"
    )
    config = tmp_path / "outagewatch.yml"
    config.write_text(f"storage:\n  path: {tmp_path / 'r.db'}\n")
    daemon = DaemonProcess(
        config, tmp_path / "d.log", args=["--web.config.file", str(web_config), *flags]
    )
    await daemon.start(wait_ready=False)  # /-/ready is https only
    deadline = time.monotonic() + 15
    while '"started"' not in daemon.logs():
        assert time.monotonic() < deadline, daemon.logs()
        await asyncio.sleep(0.1)
    return daemon


async def _tls_scrape(daemon: DaemonProcess, ca: Any) -> str:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    url = f"https://127.0.0.1:{daemon.port}/metrics"
    connector = aiohttp.TCPConnector(ssl=ctx, force_close=True)
    timeout = aiohttp.ClientTimeout(total=SCRAPE_BOUND)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.get(url) as response,
    ):
        assert response.status == 200
        return await response.text()


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
async def test_tls_handshakes_in_progress_count_against_the_cap(
    tmp_path: Path, ca: Any, event_loop: str
) -> None:
    daemon = await _tls_daemon(
        tmp_path, ca, "--web.max-connections=20", f"--event-loop={event_loop}"
    )
    try:
        # Connections that never send a ClientHello: each would hold an fd for 10 s.
        silent = [await asyncio.open_connection("127.0.0.1", daemon.port) for _ in range(60)]
        await asyncio.sleep(0.5)
        text = await _tls_scrape(daemon, ca)  # it displaced a silent one to get in
        assert sample(text, "outagewatch_http_connections_limit") == 20
        open_now = sample(text, "outagewatch_http_connections")
        assert open_now is not None and open_now <= 20
        refused = sample(text, "outagewatch_http_connections_refused_total")
        assert refused is not None and refused >= 60 + 1 - 20
        for _reader, writer in silent:
            writer.close()
        await asyncio.sleep(0.5)
        text = await _tls_scrape(daemon, ca)
        assert sample(text, "outagewatch_http_connections") == 1  # only this scrape
    finally:
        assert await daemon.stop() == 0


async def test_a_silent_tls_client_is_dropped_after_the_header_timeout(
    tmp_path: Path, ca: Any
) -> None:
    daemon = await _tls_daemon(tmp_path, ca, "--web.read-header-timeout=1s")
    try:
        # Never a ClientHello: the handshake runs out of time and the fd is freed.
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert 0.9 < time.monotonic() - started < 5
        writer.close()
        # A TLS client that shakes hands but sends no request is dropped just as fast.
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port, ssl=ctx)
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError, ssl.SSLError):
            assert await asyncio.wait_for(reader.read(), 10) == b""
        assert 0.9 < time.monotonic() - started < 5
        writer.close()
    finally:
        assert await daemon.stop() == 0
