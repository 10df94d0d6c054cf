"""Why a probe fails, where the on-call engineer looks (issue 21).

A real daemon probes real local servers that fail in the usual ways: a
certificate expired, for another name, from an unknown CA; a refused port; a
name that does not exist; a body cut after its 200. Each failure's reason,
sub-reason, detail and status code must show on /metrics, in /api/v1/status and
on the page, and a probe failing from start must log its detail once.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from .conftest import Serve
from .daemon_process import DaemonProcess, free_port

# probe -> (reason, sub_reason, detail, status code)
EXPECTED: dict[str, tuple[str, str, str, int | None]] = {
    "expired": (
        "tls",
        "expired",
        "certificate verify failed: certificate has expired",
        None,
    ),
    "wrong-name": (
        "tls",
        "hostname_mismatch",
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'.",
        None,
    ),
    "unknown-ca": (
        "tls",
        "unknown_ca",
        "certificate verify failed: unable to get local issuer certificate",
        None,
    ),
    "refused": ("connect", "refused", "connection refused", None),
    "no-such-name": (
        "dns",
        "nxdomain",
        "cannot resolve outagewatch-probe-target.invalid: Name or service not known",
        None,
    ),
    "body-cut": ("body", "", "connection closed 95 body bytes short of its Content-Length", 200),
}


def tls_server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


async def ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


@pytest.fixture
async def cut_body_server() -> AsyncIterator[str]:
    """Sends a 200 head promising 100 bytes, then 5, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    server.close()


@pytest.fixture
async def daemon(
    tmp_path: Path, serve: Serve, ca: trustme.CA, cut_body_server: str
) -> AsyncIterator[DaemonProcess]:
    app = web.Application()
    app.router.add_get("/", ok)
    yesterday = datetime.now(UTC) - timedelta(days=1)
    expired = ca.issue_cert(
        "127.0.0.1", not_before=yesterday - timedelta(days=30), not_after=yesterday
    )
    urls = {
        "expired": await serve(app, ssl_context=tls_server_context(expired)),
        "wrong-name": await serve(app, ssl_context=tls_server_context(ca.issue_cert("other.test"))),
        "unknown-ca": await serve(
            app, ssl_context=tls_server_context(trustme.CA().issue_cert("127.0.0.1"))
        ),
        "refused": f"http://127.0.0.1:{free_port()}",
        "no-such-name": "http://outagewatch-probe-target.invalid",
        "body-cut": cut_body_server.rstrip("/"),
    }
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    lines = ["services:", "  claude:", "    probes:"]
    for name, url in urls.items():
        lines += [
            f"      {name}:",
            "        kind: http",
            f"        url: {url}/",
            "        interval: 1s",
            "        timeout: 900ms",
            f"        tls_ca_file: {ca_file}",
        ]
    config = tmp_path / "outagewatch.yml"
    config.write_text("\n".join(lines) + "\n")
    process = DaemonProcess(config, tmp_path / "daemon.log")
    await process.start()
    yield process
    await process.stop()


def _labels(line: str) -> dict[str, str]:
    labels = (part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
    return {k: v.strip('"') for k, v in labels}


def failure_lines(metrics: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The probes with a failures counter, and the service's (reason, sub_reason)s."""
    probes, reasons = set(), set()
    for line in metrics.splitlines():
        if line.startswith("outagewatch_probe_failures_total{"):
            probes.add(_labels(line)["probe"])
        elif line.startswith("outagewatch_probe_failure_reasons_total{"):
            labels = _labels(line)
            reasons.add((labels["reason"], labels["sub_reason"]))
    return probes, reasons


async def test_each_failure_says_why_on_metrics_status_json_page_and_log(
    daemon: DaemonProcess,
) -> None:
    deadline = time.monotonic() + 20
    while True:
        metrics = await daemon.metrics()
        failing, reasons = failure_lines(metrics)
        if len(failing) == len(reasons) == len(EXPECTED) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.5)  # more failing runs with the same detail: still one log line
    metrics = await daemon.metrics()
    # Each probe fails for a cause of its own: the service's reasons are those causes.
    assert failure_lines(metrics) == (set(EXPECTED), {(e[0], e[1]) for e in EXPECTED.values()})
    assert 'outagewatch_probe_http_status_code{probe="body-cut",service="claude"} 200.0' in metrics

    status, text = await daemon.get("/api/v1/status")
    assert status == 200
    document = json.loads(text)
    probes = {p["probe"]: p for p in document["services"][0]["probes"]}
    for name, (reason, sub_reason, detail, code) in EXPECTED.items():
        entry = probes[name]
        assert entry["result"] == "down"
        assert (entry["reason"], entry["sub_reason"] or "") == (reason, sub_reason), name
        assert (entry["detail"], entry["status_code"]) == (detail, code), name

    status, page = await daemon.get("/")
    assert status == 200
    page = unescape(page)
    # The page says it in words; the JSON above keeps the codes.
    words = {
        "expired": "TLS certificate expired",
        "wrong-name": "TLS certificate for another host name",
        "unknown-ca": "TLS certificate from an unknown authority",
        "refused": "connection refused",
        "no-such-name": "DNS: no such host",
        "body-cut": "answer broke off, HTTP 200",
    }
    for name, (_reason, _sub_reason, detail, _code) in EXPECTED.items():
        label = f"✕ down: {words[name]}"
        row = page[page.index(f"<td>{name}</td>") :]
        row = row[: row.index("</tr>")]
        assert label in row and detail in row, row

    logged: dict[str, list[dict[str, Any]]] = {}
    for line in daemon.logs().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "probe_failing":
                logged.setdefault(entry["probe"], []).append(entry)
    for name, (reason, sub_reason, detail, code) in EXPECTED.items():
        assert len(logged.get(name, [])) == 1, (name, logged.get(name))
        entry = logged[name][0]
        assert (entry["reason"], entry["sub_reason"] or "", entry["detail"]) == (
            reason,
            sub_reason,
            detail,
        )
        assert entry["status_code"] == code
