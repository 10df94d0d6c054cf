"""Daemon, Prometheus and Alertmanager together: a broken chatbot pages, a repaired one resolves.

Real processes on loopback: Debian's `prometheus` and `prometheus-alertmanager`, the
daemon (`outagewatch run`), and a fake outside world served from one thread: a chat
provider speaking Anthropic's streaming Messages API (the captured stream), a
Statuspage summary, an App Store v2 chart feed, an HTTPS API edge with a test-CA
certificate, and a webhook receiver standing in for the pager and the ticket queue.
Reports arrive through the daemon's own API. The shipped rules and routing are used
with two changes, both made to copies in a temp dir:

- every alert's `for:` is the production one divided by 60 (5m -> 5s), with
  expressions untouched; Prometheus scrapes and evaluates every second;
- Alertmanager's receivers become local webhooks and its group_wait/group_interval
  become 1s/2s; routes and inhibitions stay as shipped.

The chatbot breaks the way Anthropic's API does in an outage (HTTP 500 `api_error`):
the critical page must arrive within a bound computed from the intervals and `for:`,
and the resolved notification within its own bound after the repair. The official
page admits an incident only after the page, and is still showing it when the chatbot
is back, as status pages do. Then every PromQL expression of every rule and every
dashboard panel runs against that Prometheus: none errors, and every dashboard query
returns data.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from aiohttp import web

from outagewatch.config import DisruptionConfig
from tests.appstore.payloads import CHATBOTS, filler, v2_json
from tests.chat.conftest import FakeProvider, Reply, fixture_headers, frames_of
from tests.deploy.dashboards import committed, concrete, queries
from tests.deploy.servers import LOOPBACK, alertmanager, free_port, http_json, prometheus, running
from tests.statuspage.conftest import claude_summary, open_incident

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
OUTAGEWATCH = Path(sys.executable).parent / "outagewatch"

FOR_SCALE = 60
PROBE_INTERVAL = 1.0
SCRAPE_INTERVAL = 1.0
EVALUATION_INTERVAL = 1.0
GROUP_WAIT = 1.0
GROUP_INTERVAL = 2.0
SLACK = 5.0  # process scheduling, HTTP round trips, Prometheus' notifier batching
# Dashboard queries run with the $__rate_interval Grafana uses for a panel whose step
# is a minute (step + scrape interval): every rate then covers the whole run.
RATE_INTERVAL = "61s"
TOKEN = "e2e-reporting-token"
CLAUDE_APP_ID = CHATBOTS["claude"][0]
# What the fake provider answers in an outage: Anthropic's 500, as JSON.
API_ERROR = json.dumps(
    {
        "type": "error",
        "error": {"type": "api_error", "message": "Internal server error"},
        "request_id": "req_011CXnukXFhq5zC25S7e2e2e",
    }
).encode()
# Dashboard queries that may return nothing in this run, and why. Keep it short.
NO_DATA_ALLOWED: dict[str, str] = {}


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", duration))


def _scaled_rules(workdir: Path) -> list[Path]:
    """Copies of the shipped rule files with every `for:` divided by FOR_SCALE."""
    paths = []
    for source in sorted(RULES.glob("*.yml")):
        data = yaml.safe_load(source.read_text())
        for group in data["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = f"{max(1, round(_seconds(rule['for']) / FOR_SCALE))}s"
        path = workdir / source.name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        paths.append(path)
    return paths


def _alert_for(alertname: str, severity: str) -> float:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    return max(
        _seconds(rule.get("for", "0s")) / FOR_SCALE
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == alertname and rule["labels"]["severity"] == severity
    )


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


class World:
    """The outside world on loopback, served by aiohttp from its own thread and loop.

    The test changes what it answers by assigning attributes; handlers read them
    on every request.
    """

    def __init__(self, ca: Any) -> None:
        ratelimits = {
            name: value
            for name, value in fixture_headers("anthropic-message-200.headers.json").items()
            if name.startswith("anthropic-ratelimit-")
        }
        self.healthy = Reply(
            frames_of("anthropic-sse-stream.txt"),
            headers={**fixture_headers("anthropic-sse-stream.headers.json"), **ratelimits},
            drip=0.01,  # a stream, not one burst: tokens per second can be measured
        )
        self.broken = Reply([API_ERROR], status=500, content_type="application/json")
        self.chat = FakeProvider(self.healthy)
        self.summary: dict[str, Any] = claude_summary()
        chart = [*filler(2), (CLAUDE_APP_ID, CHATBOTS["claude"][1]), *filler(7, start=1)]
        # A chart with the app at rank 3; the test queues a 503 before it at the break.
        self.chart = (200, v2_json(chart, limit=10))
        self.feed = [self.chart]
        self.notifications: list[tuple[float, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._ca = ca
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runners: list[web.AppRunner] = []
        self.url = ""
        self.tls_url = ""

    def __enter__(self) -> World:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, app: web.Application, tls: bool) -> str:
        context = None
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._ca.issue_cert(LOOPBACK).configure_cert(context)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, LOOPBACK, 0, ssl_context=context)
        await site.start()
        self._runners.append(runner)
        return f"{'https' if tls else 'http'}://{LOOPBACK}:{runner.addresses[0][1]}"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._chat)
        app.router.add_get("/status/api/v2/summary.json", self._status)
        app.router.add_get("/apple/us/apps/top-free/10/apps.json", self._chart)
        app.router.add_post("/hooks/{receiver}", self._hook)
        self.url = await self._serve(app, tls=False)
        edge = web.Application()
        edge.router.add_get("/v1/models", self._edge)
        self.tls_url = await self._serve(edge, tls=True)

    async def _stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self.chat.handle(request)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.summary)

    async def _chart(self, request: web.Request) -> web.Response:
        status, body = self.feed.pop(0) if len(self.feed) > 1 else self.feed[0]
        return web.Response(status=status, body=body, content_type="application/json")

    async def _edge(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [], "has_more": False})

    async def _hook(self, request: web.Request) -> web.Response:
        payload = await request.json()
        with self._lock:
            self.notifications.append((time.monotonic(), request.match_info["receiver"], payload))
        return web.Response()

    def received(self, receiver: str) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [(t, body) for t, name, body in self.notifications if name == receiver]


@pytest.fixture
def world(ca: Any) -> Iterator[World]:
    with World(ca) as fake:
        yield fake


def _daemon_config(workdir: Path, world: World, ca: Any) -> Path:
    ca_file = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    key_file = workdir / "anthropic-api-key"
    key_file.write_text("sk-e2e-test-key\n")
    tokens = workdir / "report-tokens"
    tokens.write_text(TOKEN + "\n")
    second = f"{PROBE_INTERVAL:g}s"
    config = {
        "storage": {"path": str(workdir / "outagewatch.db")},
        "reports": {"tokens_file": str(tokens)},
        "appstore": {
            "v2_base_url": f"{world.url}/apple",
            "countries": ["us"],
            "limit": 10,
            "interval": second,
            "timeout": second,
            "backoff_max": "2s",
        },
        "services": {
            "e2e": {
                "appstore": {"app_id": CLAUDE_APP_ID},
                "status_pages": {
                    "official": {
                        "kind": "statuspage",
                        "url": f"{world.url}/status",
                        "components": ["claude.ai", "Claude API"],
                        "interval": second,
                        "timeout": second,
                    }
                },
                "probes": {
                    "chat": {
                        "kind": "anthropic",
                        "base_url": f"{world.url}/v1",
                        "model": "claude-haiku-4-5",
                        "api_key_file": str(key_file),
                        "interval": second,
                        "timeout": second,
                        "max_chunk_gap": "500ms",
                    },
                    "api": {
                        "kind": "http",
                        "url": f"{world.tls_url}/v1/models",
                        "tls_ca_file": str(ca_file),
                        "interval": second,
                        "timeout": "500ms",
                    },
                },
            }
        },
    }
    path = workdir / "outagewatch.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prometheus_config(workdir: Path, daemon_port: int, am_port: int) -> Path:
    path = workdir / "prometheus.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_INTERVAL:g}s",
                    "evaluation_interval": f"{EVALUATION_INTERVAL:g}s",
                },
                "rule_files": [str(p) for p in _scaled_rules(workdir)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "outagewatch",
                        "static_configs": [
                            {
                                "targets": [f"{LOOPBACK}:{daemon_port}"],
                                "labels": {"region": "test"},
                            }
                        ],
                    }
                ],
            }
        )
    )
    return path


def _alertmanager_copy(workdir: Path, hooks: str) -> Path:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"]["group_wait"] = f"{GROUP_WAIT:g}s"
    config["route"]["group_interval"] = f"{GROUP_INTERVAL:g}s"
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
    config["receivers"] = [
        {"name": r["name"]}
        | (
            {"webhook_configs": [{"url": f"{hooks}/{r['name']}", "send_resolved": True}]}
            if r["name"] in ("pager", "ticket")
            else {}
        )
        for r in config["receivers"]
    ]
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _report(daemon: str, body: Any, token: str | None = TOKEN) -> int:
    """POST reports to the daemon; its HTTP status."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{daemon}/api/v1/reports", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status: int = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status


def _wait_for_page(
    world: World, alertname: str, status: str, since: float, within: float
) -> tuple[float, dict[str, str]]:
    """The first pager notification with `alertname` in `status` about the chat probe's
    service (and the chat probe, for probe alerts) after `since`: its time and labels.
    The alert's own status counts: its group (the service) may still be firing."""
    end = since + within
    while time.monotonic() < end:
        for at, body in world.received("pager"):
            if at < since:
                continue
            for alert in body["alerts"]:
                labels = alert["labels"]
                if alert["status"] != status:
                    continue
                if labels["alertname"] == alertname and labels.get("probe", "chat") == "chat":
                    return at, labels
        time.sleep(0.1)
    raise AssertionError(
        f"no {status} {alertname} page within {within:.1f}s; received: {world.notifications}"
    )


def _query(base: str, expr: str) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = http_json(f"{base}/api/v1/query?query={quote(expr)}")
    except Exception as exc:  # an HTTP 400 carries the PromQL error
        raise AssertionError(f"{expr}: {exc}") from exc
    return answer


def _has_data(answer: dict[str, Any]) -> bool:
    """At least one sample with a number (NaN draws nothing on a panel)."""
    data = answer["data"]
    if data["resultType"] == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(series["value"][1])) for series in data["result"])


def _eventually(prom: str, expr: str, within: float) -> None:
    end = time.monotonic() + within
    while time.monotonic() < end:
        if _has_data(_query(prom, expr)):
            return
        time.sleep(0.2)
    raise AssertionError(f"{expr} had no data after {within}s")


def _dashboard_queries() -> list[tuple[str, str]]:
    return [
        (f"{name}: {title}", concrete(expr, RATE_INTERVAL, service="e2e"))
        for name, board in committed().items()
        for title, expr in queries(board)
    ]


def test_broken_chatbot_pages_repair_resolves_and_every_query_runs(
    tmp_path: Path, world: World, ca: Any
) -> None:
    daemon_port, am_port = free_port(), free_port()
    daemon = f"http://{LOOPBACK}:{daemon_port}"
    daemon_args = [
        str(OUTAGEWATCH),
        "run",
        f"--config.file={_daemon_config(tmp_path, world, ca)}",
        f"--web.listen-address={LOOPBACK}:{daemon_port}",
        "--log.format=json",
    ]
    with (
        running(daemon_args, f"{daemon}/-/ready", tmp_path / "daemon.log"),
        alertmanager(_alertmanager_copy(tmp_path, f"{world.url}/hooks"), tmp_path, am_port),
        prometheus(_prometheus_config(tmp_path, daemon_port, am_port), tmp_path) as prom,
    ):
        # Healthy first: the chat probe succeeds and Prometheus has scraped it.
        _eventually(prom, 'outagewatch_probe_success{service="e2e", probe="chat"} == 1', 15)

        bound = (
            PROBE_INTERVAL
            + SCRAPE_INTERVAL
            + 2 * EVALUATION_INTERVAL
            + _alert_for("OutagewatchEndpointDown", "critical")
            + GROUP_WAIT
            + SLACK
        )
        # The daemon's own judgement: disrupted once the probe has failed
        # probe_failure_runs runs in a row (the chat probe is half of the fresh probes).
        disrupted_bound = (
            DisruptionConfig().probe_failure_runs * PROBE_INTERVAL
            + SCRAPE_INTERVAL
            + 2 * EVALUATION_INTERVAL
            + _alert_for("OutagewatchServiceDisrupted", "critical")
            + GROUP_WAIT
            + SLACK
        )
        broken_at = time.monotonic()
        world.chat.reply = world.broken
        world.feed = [(503, b"busy"), world.chart]  # and the App Store feed hiccups once
        # Users notice and report it (one of them about a service nobody watches).
        reports = [
            {"service": "e2e", "problem": problem, "reporter": f"user-{i}"}
            for i, problem in enumerate(["app", "login", "slow"])
        ]
        assert _report(daemon, reports) == 202
        assert _report(daemon, {"service": "nope", "problem": "app", "reporter": "x"}) == 422
        paged_at, labels = _wait_for_page(
            world, "OutagewatchEndpointDown", "firing", broken_at, bound
        )
        break_to_page = paged_at - broken_at
        assert labels["severity"] == "critical"
        assert (labels["service"], labels["probe"], labels["region"]) == ("e2e", "chat", "test")
        disrupted_at, labels = _wait_for_page(
            world, "OutagewatchServiceDisrupted", "firing", broken_at, disrupted_bound
        )
        assert (labels["severity"], labels["service"]) == ("critical", "e2e")

        # The official page admits it now, later than we paged, and keeps it open
        # after the repair.
        incident = open_incident(impact="minor") | {
            "started_at": _iso(time.time()),
            "created_at": _iso(time.time()),
        }
        world.summary = claude_summary("degraded_performance", "minor", [incident])

        repaired_at = time.monotonic()
        world.chat.reply = world.healthy
        resolve_bound = (
            PROBE_INTERVAL + SCRAPE_INTERVAL + 2 * EVALUATION_INTERVAL + GROUP_INTERVAL + SLACK
        )
        resolved_at, _ = _wait_for_page(
            world, "OutagewatchEndpointDown", "resolved", repaired_at, resolve_bound
        )
        repair_to_resolve = resolved_at - repaired_at
        print(
            f"\nbreak -> page {break_to_page:.1f}s (bound {bound:.1f}s), "
            f"disrupted page {disrupted_at - broken_at:.1f}s (bound {disrupted_bound:.1f}s); "
            f"repair -> resolved {repair_to_resolve:.1f}s (bound {resolve_bound:.1f}s)"
        )
        assert not world.received("ticket"), "no warning should have reached the ticket queue"
        # outagewatch flagged the service before the official page admitted it.
        _eventually(prom, 'outagewatch_detection_lead_seconds{service="e2e"} > 0', 10)
        _eventually(prom, 'outagewatch_detection_incidents_total{outcome="early"} == 1', 5)
        lead = _query(prom, 'outagewatch_detection_lead_seconds{service="e2e"}')["data"]["result"]
        pages = sorted(
            {a["labels"]["alertname"] for _, b in world.received("pager") for a in b["alerts"]}
        )
        print(f"detection lead {float(lead[0]['value'][1]):.1f}s; pages: {', '.join(pages)}")

        # Every rule runs without error.
        rules = http_json(f"{prom}/api/v1/rules")["data"]["groups"]
        rule_exprs = [rule["query"] for group in rules for rule in group["rules"]]
        assert len(rule_exprs) >= 30
        for expr in rule_exprs:
            assert _query(prom, expr)["status"] == "success", expr

        # Every dashboard query runs without error and, once the incident reading has
        # been scraped, returns data.
        _eventually(prom, 'outagewatch_status_level{service="e2e"} == 1', 10)
        empty = []
        for where, expr in _dashboard_queries():
            answer = _query(prom, expr)
            assert answer["status"] == "success", where
            if not _has_data(answer):
                empty.append(where)
        assert sorted(empty) == sorted(NO_DATA_ALLOWED), f"queries without data: {empty}"
