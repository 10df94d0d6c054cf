"""Shared fixtures: real local servers on loopback, a fake resolver, a test CA."""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from outagewatch.clock import SystemClock
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
TESTDATA = Path(__file__).resolve().parent / "testdata"


def require_tool(name: str) -> str:
    """The path of a command the tests run for real; fail (never skip) when missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `make test` (it installs Debian's prometheus and "
            f"prometheus-alertmanager packages) or `apt-get install prometheus`"
        )
    return path


class FakeResolver(AbstractResolver):
    """Resolves configured names to loopback; any other name does not exist."""

    def __init__(self, hosts: dict[str, str]) -> None:
        self.hosts = hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.hosts.get(host)
        if address is None:
            raise OSError(socket.EAI_NONAME, f"unknown host {host}")
        fam = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family not in (socket.AF_UNSPEC, fam):
            raise OSError(socket.EAI_ADDRFAMILY, f"no {family.name} address for {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": fam,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None


Serve = Callable[..., Any]


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory, so a default store never lands in the repo."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that runs the CLI in-process configures structlog for the process (level
    filter, processors); put the defaults back so later tests' capture_logs sees all."""
    yield
    structlog.reset_defaults()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an aiohttp app on 127.0.0.1:0; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(
        app: web.Application, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
def hosts() -> dict[str, str]:
    """Names the fake resolver knows; tests add to it."""
    return {"localhost": "127.0.0.1"}


@pytest.fixture
async def http_clients(hosts: dict[str, str]) -> AsyncIterator[HttpClients]:
    clients = HttpClients(lambda: FakeResolver(hosts))
    yield clients
    await clients.close()


@pytest.fixture
def run_context(http_clients: HttpClients) -> RunContext:
    return RunContext(http=http_clients, clock=SystemClock(), log=structlog.get_logger("test"))


@pytest.fixture(scope="session")
def ca() -> Iterator[Any]:
    import trustme

    yield trustme.CA()
