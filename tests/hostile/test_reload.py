"""Hostile reloads (issue 16, rows 4 and 5): the old config keeps running, the
reload metric says 0, systemd hears READY=1 again, and nothing is half applied."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from ..conftest import Serve
from ..daemon_process import DaemonProcess


class NotifySocket:
    """The systemd side of sd_notify: a datagram socket the daemon writes to."""

    def __init__(self) -> None:
        # A short path: unix socket paths are limited to 107 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="ow-notify-", dir="/tmp"))
        self.path = self.directory / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)
        self.received: list[str] = []

    def _drain(self) -> None:
        while True:
            try:
                self.received.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return

    async def wait_for(self, line: str, after: int = 0, within: float = 20.0) -> int:
        """Index of the first message from ``after`` on that has ``line``."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self._drain()
            for index in range(after, len(self.received)):
                if line in self.received[index].splitlines():
                    return index
            await asyncio.sleep(0.05)
        raise AssertionError(f"{line} never came after message {after}: {self.received}")

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    yield sock
    sock.close()


@pytest.fixture
async def target(serve: Serve) -> tuple[str, Counter[str]]:
    """A web app counting the requests each path gets."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.Response:
        hits[request.match_info["path"]] += 1
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/{path}", handle)
    return await serve(app), hits


def config_text(base: str, path: str, interval: str = "200ms") -> str:
    return (
        "services:\n  claude:\n    probes:\n      api:\n        kind: http\n"
        f"        url: {base}/{path}\n        interval: {interval}\n        timeout: 150ms\n"
    )


@pytest.fixture
async def daemon(
    tmp_path: Path, notify: NotifySocket, target: tuple[str, Counter[str]]
) -> AsyncIterator[DaemonProcess]:
    config = tmp_path / "outagewatch.yml"
    config.write_text(config_text(target[0], "one"))
    process = DaemonProcess(
        config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": str(notify.path)}
    )
    await process.start()
    await notify.wait_for("READY=1")
    yield process
    await process.stop()


def reload_metric(scrape: str) -> float:
    return next(
        float(line.split()[1])
        for line in scrape.splitlines()
        if line.startswith("outagewatch_config_last_reload_successful ")
    )


async def still_probing(hits: Counter[str], path: str, within: float = 10.0) -> None:
    before = hits[path]
    deadline = time.monotonic() + within
    while hits[path] < before + 2:
        assert time.monotonic() < deadline, f"/{path} is no longer probed"
        await asyncio.sleep(0.05)


HOSTILE_RELOADS: dict[str, Callable[[str], bytes]] = {
    # row 4: validates (before the fix) but cannot be scheduled
    "interval-inf": lambda base: config_text(base, "two", interval=".inf").encode(),
    "interval-0.001ms": lambda base: config_text(base, "two", interval="0.001ms").encode(),
    # row 5
    "invalid-utf8": lambda base: config_text(base, "two").encode() + b"# caf\xe9\n",
    "deep-5000": lambda _base: b"services: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "port-99999": lambda _base: config_text("http://127.0.0.1:99999", "two").encode(),
    "missing-ca-file": lambda base: (
        config_text(base, "two") + "        tls_ca_file: /nonexistent/ca.pem\n"
    ).encode(),
}


async def test_sighup_with_a_hostile_config_keeps_the_old_one_running(
    daemon: DaemonProcess,
    notify: NotifySocket,
    target: tuple[str, Counter[str]],
) -> None:
    base, hits = target
    await still_probing(hits, "one")
    for name, make in HOSTILE_RELOADS.items():
        daemon.config.write_bytes(make(base))
        mark = len(notify.received)
        daemon.signal(signal.SIGHUP)
        reloading = await notify.wait_for("RELOADING=1", after=mark)
        await notify.wait_for("READY=1", after=reloading)
        assert reload_metric(await daemon.metrics()) == 0, name
        assert await daemon.get("/-/ready") == (200, "Ready\n"), name
        await still_probing(hits, "one")
        assert hits["two"] == 0, name
    logs = daemon.logs()
    assert logs.count('"event": "config_reload_failed"') == len(HOSTILE_RELOADS), logs
    assert "Traceback" not in logs
    assert "nested deeper than 64 levels" in logs and "not valid UTF-8 at line 9" in logs

    # A good config after all that is applied whole.
    daemon.config.write_text(config_text(base, "two"))
    mark = len(notify.received)
    daemon.signal(signal.SIGHUP)
    await notify.wait_for("READY=1", after=mark)
    assert reload_metric(await daemon.metrics()) == 1
    await still_probing(hits, "two")
    await asyncio.sleep(0.5)  # a run of /one in flight at the swap may still land
    before = hits["one"]
    await asyncio.sleep(1.0)
    assert hits["one"] == before, "the old probe still runs"


def lifecycle_flag() -> list[str]:
    """``--web.enable-lifecycle`` when this build has it (another branch adds it)."""
    done = subprocess.run(
        [sys.executable, "-m", "outagewatch.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return ["--web.enable-lifecycle"] if "--web.enable-lifecycle" in done.stdout else []


# INTEGRATOR: POST /-/reload. When `--web.enable-lifecycle` lands, lifecycle_flag()
# passes it; if the flag's name differs, change it there.
async def test_http_reload_of_a_hostile_config_answers_500_with_the_reason(
    tmp_path: Path, notify: NotifySocket, target: tuple[str, Counter[str]]
) -> None:
    base, hits = target
    config = tmp_path / "outagewatch.yml"
    config.write_text(config_text(base, "one"))
    process = DaemonProcess(
        config, tmp_path / "daemon.log", env={"NOTIFY_SOCKET": str(notify.path)}
    )
    await start_with_flags(process, lifecycle_flag())
    try:
        await notify.wait_for("READY=1")
        config.write_text(config_text("http://[::1", "two"))
        mark = len(notify.received)
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{process.url}/-/reload") as response,
        ):
            body = await response.text()
        assert response.status == 500, body
        assert body.startswith("Reload failed; the old config stays:\n"), body
        assert "services -> claude -> probes -> api -> url: invalid URL" in body
        await notify.wait_for("READY=1", after=mark)
        assert reload_metric(await process.metrics()) == 0
        await still_probing(hits, "one")

        config.write_text(config_text(base, "two"))
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{process.url}/-/reload") as response,
        ):
            assert response.status == 200, await response.text()
        assert reload_metric(await process.metrics()) == 1
    finally:
        await process.stop()


async def start_with_flags(process: DaemonProcess, flags: list[str]) -> None:
    """``DaemonProcess.start`` with extra flags for ``run``."""
    with process.log_path.open("ab") as log:
        process.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "outagewatch.cli",
            "run",
            "--config.file",
            str(process.config),
            "--web.listen-address",
            f"127.0.0.1:{process.port}",
            "--log.format",
            "json",
            *flags,
            stdout=log,
            stderr=log,
            env=process.env,
            cwd=process.log_path.parent,
        )
    with contextlib.suppress(AssertionError):
        await process.wait_ready()
        return
    raise AssertionError(f"daemon not ready: {process.logs()}")
