"""The daemon as users run it: a subprocess, signals, promtool, a real Prometheus."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from outagewatch.config import EX_CONFIG

from .conftest import Serve, require_tool
from .daemon_process import DaemonProcess, free_port


def probe_config(base: str, probes: dict[str, str], interval: str = "1s") -> str:
    lines = ["services:", "  claude:", "    probes:"]
    for name, path in probes.items():
        lines += [
            f"      {name}:",
            "        kind: http",
            f"        url: {base}{path}",
            f"        interval: {interval}",
            "        timeout: 500ms",
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def target(serve: Serve) -> str:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def down(_r: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/down", down)
    base: str = await serve(app)
    return base


@pytest.fixture
async def daemon(tmp_path: Path, target: str) -> AsyncIterator[DaemonProcess]:
    config = tmp_path / "outagewatch.yml"
    config.write_text(probe_config(target, {"api": "/ok", "web": "/down"}))
    process = DaemonProcess(config, tmp_path / "daemon.log")
    await process.start()
    yield process
    await process.stop()


async def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )


async def test_metrics_pass_promtool_check_metrics(daemon: DaemonProcess) -> None:
    text = await daemon.wait_for_metric('outagewatch_probe_success{probe="web"')
    assert 'outagewatch_probe_success{probe="api",service="claude"} 1.0' in text
    assert 'outagewatch_probe_success{probe="web",service="claude"} 0.0' in text
    assert 'reason="http_status"' in text
    assert "process_cpu_seconds_total" in text
    assert "outagewatch_build_info{" in text
    checked = await promtool_check_metrics(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


async def test_health_readiness_and_landing_page(daemon: DaemonProcess) -> None:
    assert await daemon.get("/-/healthy") == (200, "OK\n")
    assert (await daemon.get("/-/ready"))[0] == 200
    await daemon.wait_for_metric('outagewatch_probe_success{probe="web"')
    status, page = await daemon.get("/")
    assert status == 200
    assert ">claude</h2>" in page
    assert "✕ down: HTTP 503" in page


async def test_sighup_keeps_old_config_on_error_and_swaps_probes_on_success(
    daemon: DaemonProcess, target: str
) -> None:
    await daemon.wait_for_metric('outagewatch_probe_success{probe="web"')
    daemon.config.write_text("services:\n  claude:\n    probes:\n      api: {kind: http}\n")
    daemon.signal(signal.SIGHUP)
    text = await daemon.wait_for_metric("outagewatch_config_last_reload_successful 0.0")
    assert 'outagewatch_probe_success{probe="api",service="claude"} 1.0' in text
    assert "services -> claude -> probes -> api -> url: required key is missing" in daemon.logs()

    daemon.config.write_text(probe_config(target, {"api": "/ok", "edge": "/ok"}))
    daemon.signal(signal.SIGHUP)
    text = await daemon.wait_for_metric('outagewatch_probe_success{probe="edge"')
    assert "outagewatch_config_last_reload_successful 1.0" in text
    assert 'probe="web"' not in text  # removed probes vanish from /metrics
    assert 'source="claude/probe/web"' not in text


async def test_post_reload(tmp_path: Path, target: str) -> None:
    config = tmp_path / "outagewatch.yml"
    config.write_text(probe_config(target, {"api": "/ok"}))
    daemon = DaemonProcess(config, tmp_path / "d.log", args=["--web.enable-lifecycle"])
    await daemon.start()
    try:
        await _post_reload(daemon, target)
    finally:
        await daemon.stop()


async def _post_reload(daemon: DaemonProcess, target: str) -> None:
    daemon.config.write_text(probe_config(target, {"only": "/ok"}))
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{daemon.url}/-/reload") as response:
            assert response.status == 200
        daemon.config.write_text("services: [")
        async with session.post(f"{daemon.url}/-/reload") as response:
            assert response.status == 500
    text = await daemon.wait_for_metric('outagewatch_probe_success{probe="only"')
    assert "outagewatch_config_last_reload_successful 0.0" in text


async def test_sigterm_exits_zero_promptly(daemon: DaemonProcess) -> None:
    await daemon.wait_for_metric("outagewatch_probes_total")
    started = time.monotonic()
    assert await daemon.stop(within=10) == 0
    assert time.monotonic() - started < 5


async def test_sigterm_cancels_a_probe_in_flight(tmp_path: Path) -> None:
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    config = tmp_path / "c.yml"
    config.write_text(
        "services:\n  s:\n    probes:\n      slow:\n        kind: http\n"
        f"        url: http://127.0.0.1:{port}/\n        interval: 1m\n        timeout: 50s\n"
    )
    process = DaemonProcess(config, tmp_path / "d.log")
    await process.start()
    await asyncio.sleep(1.0)
    started = time.monotonic()
    assert await process.stop(within=10) == 0
    assert time.monotonic() - started < 5
    silent.close()


async def test_invalid_config_at_start_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("services:\n  claude:\n    probez: {}\n")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "outagewatch.cli", "run", "--config.file", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == EX_CONFIG
    assert "services -> claude -> probez: unknown key" in done.stderr


async def test_systemd_notify_protocol(tmp_path: Path, target: str) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.setblocking(False)
    config = tmp_path / "c.yml"
    config.write_text(probe_config(target, {"api": "/ok"}))
    process = DaemonProcess(
        config,
        tmp_path / "d.log",
        env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"},
    )
    loop = asyncio.get_running_loop()

    async def receive_until(wanted: str) -> list[str]:
        seen: list[str] = []
        async with asyncio.timeout(10):
            while True:
                message = (await loop.sock_recv(sock, 4096)).decode()
                seen.append(message)
                if wanted in message.splitlines():
                    return seen

    try:
        await process.start(wait_ready=False)
        await receive_until("READY=1")
        await receive_until("WATCHDOG=1")
        await receive_until("WATCHDOG=1")  # repeats, every half WATCHDOG_USEC
        process.signal(signal.SIGHUP)
        seen = await receive_until("READY=1")
        reloading = next(m for m in seen if "RELOADING=1" in m)
        assert "MONOTONIC_USEC=" in reloading
        process.signal(signal.SIGTERM)
        await receive_until("STOPPING=1")
        assert process.proc is not None
        assert await asyncio.wait_for(process.proc.wait(), 10) == 0
    finally:
        sock.close()


async def test_real_prometheus_scrapes_the_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: outagewatch\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{daemon.port}']}}]\n"
    )
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=log,
        )
    try:
        series: dict[str, float] = {}
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while len(series) < 2:
                await asyncio.sleep(0.5)
                try:
                    async with session.get(
                        f"http://127.0.0.1:{port}/api/v1/query",
                        params={"query": "outagewatch_probe_success"},
                    ) as response:
                        body = json.loads(await response.text())
                except aiohttp.ClientError:
                    continue
                series = {
                    r["metric"]["probe"]: float(r["value"][1]) for r in body["data"]["result"]
                }
                for result in body["data"]["result"]:
                    assert result["metric"]["job"] == "outagewatch"
                    assert result["metric"]["service"] == "claude"
        assert series == {"api": 1.0, "web": 0.0}
    finally:
        proc.terminate()
        await proc.wait()
