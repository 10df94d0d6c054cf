"""TLS expiry of a chain whose intermediate expires before the leaf, on every Python.

Python 3.13 made ``get_unverified_chain`` public and returns DER bytes: the probe sees
the whole presented chain and reports the intermediate's expiry. Before 3.13 only the
leaf can be had, so the leaf's expiry is what is knowable. Before the fix for issue
15, every HTTPS probe failed on 3.13 (the code called ``.public_bytes()`` on bytes).
"""

from __future__ import annotations

import datetime as dt
import ssl
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from outagewatch.config import HttpProbe
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.sources.base import RunContext, run_source

from .conftest import Serve
from .daemon_process import DaemonProcess

EXPIRY_METRIC = "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds"
# trustme's CAs expire on 3000-01-01; the leaf outlives its intermediate by a year.
LEAF_NOT_AFTER = dt.datetime(3001, 1, 1, tzinfo=dt.UTC)


class ChainServer:
    """An HTTPS app whose certificate is issued by an intermediate that expires first."""

    def __init__(self, ca: Any, identity: str, tmp_path: Path) -> None:
        intermediate = ca.create_child_ca()
        self.leaf = intermediate.issue_cert(identity, not_after=LEAF_NOT_AFTER)
        self.intermediate_expiry = x509.load_pem_x509_certificate(
            intermediate.cert_pem.bytes()
        ).not_valid_after_utc.timestamp()
        self.ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))

    async def start(self, serve: Serve) -> str:
        async def ok(_r: web.Request) -> web.Response:
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/ok", ok)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.leaf.configure_cert(context)  # presents the leaf and the intermediate
        base: str = await serve(app, ssl_context=context)
        return base

    def expected_expiry(self) -> float:
        """What this Python can know: the whole chain from 3.13, the leaf before."""
        assert self.intermediate_expiry < LEAF_NOT_AFTER.timestamp()
        if sys.version_info >= (3, 13):
            return self.intermediate_expiry
        return LEAF_NOT_AFTER.timestamp()


async def test_probe_reports_the_earliest_expiry_this_python_can_see(
    serve: Serve, run_context: RunContext, ca: Any, hosts: dict[str, str], tmp_path: Path
) -> None:
    hosts["api.test"] = "127.0.0.1"
    server = ChainServer(ca, "api.test", tmp_path)
    base = (await server.start(serve)).replace("127.0.0.1", "api.test")
    source = HttpProbeSource(
        "claude",
        "api",
        HttpProbe.model_validate(
            {
                "kind": "http",
                "url": f"{base}/ok",
                "timeout": "2s",
                "tls_ca_file": str(server.ca_file),
            }
        ),
    )

    [result] = await run_source(source, run_context)

    assert result.success is True, result.detail
    assert result.tls_earliest_expiry == server.expected_expiry()


def sample_value(text: str, name: str, labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and labels in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} sample with {labels} in:\n{text}")


async def test_daemon_exports_the_earliest_expiry_this_python_can_see(
    serve: Serve, ca: Any, tmp_path: Path
) -> None:
    server = ChainServer(ca, "127.0.0.1", tmp_path)
    base = await server.start(serve)
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n"
        "  claude:\n"
        "    probes:\n"
        "      api:\n"
        "        kind: http\n"
        f"        url: {base}/ok\n"
        f"        tls_ca_file: {server.ca_file}\n"
        "        interval: 2s\n"
        "        timeout: 1500ms\n"
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        text = await daemon.wait_for_metric(EXPIRY_METRIC + "{")
    finally:
        await daemon.stop()

    labels = 'probe="api",service="claude"'
    assert sample_value(text, "outagewatch_probe_success", labels) == 1.0
    assert sample_value(text, EXPIRY_METRIC, labels) == server.expected_expiry()
