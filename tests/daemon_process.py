"""Start the real daemon as a subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DaemonProcess:
    """``outagewatch run`` in a subprocess; logs go to a file for the test to read."""

    def __init__(
        self,
        config: Path,
        log: Path,
        env: dict[str, str] | None = None,
        program: list[str] | None = None,
        args: Sequence[str] = (),
        nofile: tuple[int, int] | None = None,
    ) -> None:
        self.config = config
        # The command that starts outagewatch (tests/packaging: an installed wheel's script).
        self.program = program or [sys.executable, "-m", "outagewatch.cli"]
        self.args = list(args)  # more flags for `outagewatch run`
        self.nofile = nofile  # the child's RLIMIT_NOFILE (soft, hard), as systemd would set
        self.log_path = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, wait_ready: bool = True) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.program,
                "run",
                "--config.file",
                str(self.config),
                "--web.listen-address",
                f"127.0.0.1:{self.port}",
                "--log.format",
                "json",
                *self.args,
                stdout=log,
                stderr=log,
                env=self.env,
                preexec_fn=self._limit_fds if self.nofile else None,
                cwd=self.log_path.parent,  # the default store lands beside the log, not in the repo
            )
        if wait_ready:
            await self.wait_ready()

    def _limit_fds(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)

    async def wait_ready(self, within: float = 15.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}: {self.logs()}")
                try:
                    async with session.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"daemon not ready after {within}s: {self.logs()}")

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            return response.status, await response.text()

    async def metrics(self) -> str:
        status, text = await self.get("/metrics")
        assert status == 200
        return text

    async def wait_for_metric(self, needle: str, within: float = 15.0) -> str:
        """Scrape until a line containing ``needle`` shows up; return the scrape."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            text = await self.metrics()
            if any(needle in line for line in text.splitlines() if not line.startswith("#")):
                return text
            await asyncio.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared on /metrics")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self, within: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
