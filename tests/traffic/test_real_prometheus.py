"""The traffic lens end to end: a real Prometheus on loopback scrapes a tiny exporter
whose values the test drives; the daemon queries it, and a surge sets
`traffic_spike`, a drop `traffic_drop`; a query that matches nothing and one that
does not parse fail their runs with `no_data` and `bad_response`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import Serve
from tests.daemon_process import DaemonProcess
from tests.deploy.servers import prometheus

WARMUP_POINTS = 8


class Exporter:
    """`/metrics` with one `traffic_requests` gauge per service, values set by the test."""

    def __init__(self) -> None:
        self.values = {"surging": 100.0, "dropping": 100.0}
        self.scrapes = 0

    def app(self) -> web.Application:
        async def metrics(_request: web.Request) -> web.Response:
            self.scrapes += 1
            wobble = self.scrapes % 3  # a little noise, as real traffic has
            lines = [
                f'traffic_requests{{svc="{svc}"}} {value + wobble}'
                for svc, value in self.values.items()
            ]
            return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        return app


def prometheus_config(tmp_path: Path, exporter: str) -> Path:
    path = tmp_path / "prometheus.yml"
    target = exporter.removeprefix("http://")
    path.write_text(
        "global: {scrape_interval: 500ms, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: exporter\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return path


def daemon_config(prom: str) -> str:
    def query(expr: str) -> str:
        return f"{{url: '{prom}', query: '{expr}', interval: 500ms, timeout: 400ms}}"

    return f"""
scheduler: {{jitter_ratio: 0}}
detection: {{warmup_s: 0, warmup_points: {WARMUP_POINTS}}}
disruption: {{evaluate_interval: 100ms}}
services:
  surging:
    traffic:
      requests: {query('sum(traffic_requests{svc="surging"})')}
  dropping:
    traffic:
      requests: {query('sum(traffic_requests{svc="dropping"})')}
      nothing: {query("sum(no_such_metric)")}
      broken: {query("sum(")}
"""


async def status(daemon: DaemonProcess) -> dict[str, Any]:
    code, text = await daemon.get("/api/v1/status")
    assert code == 200
    return {s["service"]: s for s in json.loads(text)["services"]}


async def until_reason(daemon: DaemonProcess, service: str, reason: str, within: float) -> None:
    deadline = time.monotonic() + within
    seen: Any = None
    while time.monotonic() < deadline:
        seen = (await status(daemon))[service]
        if reason in seen["disruption"]["reasons"]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{service} never had {reason}: {seen}")


async def test_surge_and_drop_through_a_real_prometheus(serve: Serve, tmp_path: Path) -> None:
    started = time.monotonic()
    exporter = Exporter()
    base = await serve(exporter.app())
    with prometheus(prometheus_config(tmp_path, base), tmp_path) as prom:
        config = tmp_path / "outagewatch.yml"
        config.write_text(daemon_config(prom))
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        await daemon.start()
        try:
            # Steady traffic until both detectors are past their warm-up.
            await daemon.wait_for_metric('outagewatch_traffic_value{query="requests"', 20.0)
            await asyncio.sleep(WARMUP_POINTS * 0.5 + 3.0)
            services = await status(daemon)
            for name in ("surging", "dropping"):
                reasons = services[name]["disruption"]["reasons"]
                assert not {"traffic_spike", "traffic_drop"} & set(reasons), (name, reasons)
                (requests,) = [t for t in services[name]["traffic"] if t["query"] == "requests"]
                assert requests["state"] == "normal"
                assert 100.0 <= requests["value"] <= 102.0

            exporter.values = {"surging": 1000.0, "dropping": 3.0}
            await until_reason(daemon, "surging", "traffic_spike", 15.0)
            await until_reason(daemon, "dropping", "traffic_drop", 15.0)
            services = await status(daemon)
            assert "traffic_drop" not in services["surging"]["disruption"]["reasons"]
            assert "traffic_spike" not in services["dropping"]["disruption"]["reasons"]
            states = {t["query"]: t["state"] for t in services["dropping"]["traffic"]}
            assert states == {"requests": "drop", "nothing": "waiting", "broken": "waiting"}

            metrics = await daemon.metrics()
            assert (
                'outagewatch_disruption_reason{reason="traffic_spike",service="surging"} 1.0'
                in metrics
            )
            assert (
                'outagewatch_spike_active{service="dropping",signal="traffic/requests"} 1.0'
                in metrics
            )
            for source, reason in (("nothing", "no_data"), ("broken", "bad_response")):
                needle = (
                    f'outagewatch_source_failures_total{{kind="prometheus",reason="{reason}",'
                    f'source="dropping/traffic/{source}"}}'
                )
                assert needle in metrics, needle
            _, page = await daemon.get("/")
            assert "traffic dropping" in page and "traffic surging" in page
            assert "<h3>Traffic</h3>" in page and "(drop)" in page and "(surge)" in page
        finally:
            await daemon.stop()
    assert time.monotonic() - started < 60.0
