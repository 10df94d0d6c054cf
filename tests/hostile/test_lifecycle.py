"""Privileged endpoints: POST /-/reload only with --web.enable-lifecycle, never cross-site."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from tests.conftest import Serve
from tests.daemon_process import DaemonProcess
from tests.test_daemon import probe_config


async def _target(serve: Serve) -> str:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    base: str = await serve(app)
    return base


async def _post(url: str, **headers: str) -> tuple[int, str]:
    # text/plain: what a cross-site <form> or fetch() may send without a preflight.
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=b"x", headers={"Content-Type": "text/plain", **headers}) as response,
    ):
        return response.status, await response.text()


def _reloads(daemon: DaemonProcess) -> int:
    return daemon.logs().count('"config_reloaded"')


async def test_reload_endpoint_is_off_without_the_flag_and_sighup_still_works(
    tmp_path: Path, serve: Serve
) -> None:
    target = await _target(serve)
    config = tmp_path / "outagewatch.yml"
    config.write_text(probe_config(target, {"api": "/ok"}))
    daemon = DaemonProcess(config, tmp_path / "d.log")
    await daemon.start()
    try:
        config.write_text(probe_config(target, {"edge": "/ok"}))
        assert await _post(f"{daemon.url}/-/reload") == (403, "Lifecycle API is not enabled.\n")
        await asyncio.sleep(0.5)
        assert _reloads(daemon) == 0
        assert 'probe="edge"' not in await daemon.metrics()

        daemon.signal(signal.SIGHUP)
        await daemon.wait_for_metric('outagewatch_probe_success{probe="edge"')
        assert _reloads(daemon) == 1
    finally:
        assert await daemon.stop() == 0


async def test_cross_site_reloads_are_refused_even_with_the_flag(
    tmp_path: Path, serve: Serve
) -> None:
    target = await _target(serve)
    config = tmp_path / "outagewatch.yml"
    config.write_text(probe_config(target, {"api": "/ok"}))
    external = "https://outagewatch.example.net/"
    daemon = DaemonProcess(
        config,
        tmp_path / "d.log",
        args=["--web.enable-lifecycle", "--web.external-url", external, "--web.route-prefix", "/"],
    )
    await daemon.start()
    url = f"{daemon.url}/-/reload"
    try:
        refused = [
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Origin": "https://evil.example"},  # an older browser: no Sec-Fetch-*
            {"Origin": "null"},  # a sandboxed frame or a data: page
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site", "Origin": "https://other.example.net"},
        ]
        for headers in refused:
            status, text = await _post(url, **headers)
            assert status == 403, headers
            assert "refused" in text, headers
        assert _reloads(daemon) == 0

        allowed = [
            {},  # curl, a script, systemctl's ExecReload alternative
            {"Origin": daemon.url, "Sec-Fetch-Site": "same-origin"},  # the daemon's own page
            {"Origin": "https://outagewatch.example.net"},  # through the proxy
        ]
        for n, headers in enumerate(allowed, start=1):
            assert (await _post(url, **headers))[0] == 200, headers
            assert _reloads(daemon) == n

        # A loop of cross-site posts is refused before any work is done.
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                headers = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
                async with http.post(url, data=b"x", headers=headers) as response:
                    assert response.status == 403
        assert time.monotonic() - started < 20
        assert _reloads(daemon) == len(allowed)
    finally:
        assert await daemon.stop() == 0


async def test_reload_is_post_only(tmp_path: Path, serve: Serve) -> None:
    target = await _target(serve)
    config = tmp_path / "outagewatch.yml"
    config.write_text(probe_config(target, {"api": "/ok"}))
    daemon = DaemonProcess(config, tmp_path / "d.log", args=["--web.enable-lifecycle"])
    await daemon.start()
    try:
        # An <img src> or a link cannot reload it.
        assert (await daemon.get("/-/reload"))[0] == 405
        assert _reloads(daemon) == 0
    finally:
        assert await daemon.stop() == 0
