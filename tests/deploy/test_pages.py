"""What the on-call engineer receives: real Prometheus and Alertmanager, the shipped rules
and routing, and the PagerDuty events and webhook posts they send.

A loopback HTTP server plays three parts: the daemon's /metrics (exposition text the
test switches from healthy to a hard outage), PagerDuty's Events API v2 (the shipped
pager receiver with only its `url` and routing key file changed) and a generic webhook
added beside it. Prometheus scrapes and evaluates every second, every `for:` divided by
60 (5m -> 5s); Alertmanager's group_wait and group_interval become 1s and 3s.

Asserted: the incident title names the service and the evidence of every lens; critical
arrives as PagerDuty's critical; runbook and dashboard arrive as PagerDuty links and as
annotations in the webhook; one outage of one service is one group (one dedup key), a
second service another; an alert joining the group after its first notification is sent
as firing; links point at the configured --web.external-url, not the host name.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.servers import LOOPBACK, alertmanager, free_port, prometheus
from tests.deploy.test_end_to_end import ALERTMANAGER_CONFIG, _scaled_rules

pytestmark = pytest.mark.integration

PROMETHEUS_URL = "https://prometheus.example.test/"
ALERTMANAGER_URL = "https://alertmanager.example.test/"
RUNBOOK = "https://outagewatch.example.com/runbooks#outagewatchservicedisrupted"
DASHBOARD = "https://grafana.example.com/d/outagewatch-service?var-service=claude"
WITHIN = 30.0  # seconds for any expected notification: 1 s scrapes and evaluations


def _exposition(service: str, broken: bool) -> str:
    """The daemon's metrics for one service with an API edge, a web app and a chat probe."""
    probes = {
        "api": (0, 503, "") if broken else (1, 200, ""),
        "web": (0, 502, "") if broken else (1, 200, ""),
        "chat": (0, 529, "overloaded") if broken else (1, 200, "ok"),
    }
    lines = []
    for probe, (success, code, outcome) in probes.items():
        labels = f'service="{service}",probe="{probe}"'
        lines.append(f"outagewatch_probe_success{{{labels}}} {success}")
        lines.append(f"outagewatch_probe_http_status_code{{{labels}}} {code}")
        if outcome:
            for name in ("ok", "overloaded"):
                value = int(name == outcome)
                lines.append(f'outagewatch_chat_outcome{{{labels},outcome="{name}"}} {value}')
    lines.append(
        f'outagewatch_reports_ratio_to_baseline{{service="{service}"}} {12 if broken else 1}'
    )
    lines.append(f'outagewatch_status_level{{service="{service}"}} 0')
    return "\n".join(lines) + "\n"


class Outside:
    """The daemon's /metrics, PagerDuty and a webhook on one loopback port."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.received: list[tuple[float, str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        outside = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outside.lock:
                    body = "".join(
                        _exposition(s, s in outside.broken) for s in ("claude", "chatgpt")
                    )
                self._answer(200, body.encode(), "text/plain; version=0.0.4")

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outside.lock:
                    outside.received.append((time.monotonic(), self.path, payload))
                # PagerDuty answers 202 with a small JSON body.
                self._answer(202, b'{"status":"success"}', "application/json")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def posts(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for _, where, body in self.received if where == path]

    def wait(self, path: str, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
        end = time.monotonic() + WITHIN
        while time.monotonic() < end:
            posts = self.posts(path)
            if done(posts):
                return posts
            time.sleep(0.1)
        raise AssertionError(f"{path}: not there after {WITHIN}s: {self.posts(path)}")


@pytest.fixture
def outside() -> Iterator[Outside]:
    world = Outside()
    world.thread.start()
    yield world
    world.server.shutdown()
    world.server.server_close()


def _alertmanager_config(workdir: Path, outside: str) -> Path:
    """The shipped config; the pager's PagerDuty goes to the loopback server and a
    webhook is added beside it; group timers shortened."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"]["group_wait"] = "1s"
    config["route"]["group_interval"] = "3s"
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
        route.pop("group_interval", None)
    key = workdir / "routing-key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    for receiver in config["receivers"]:
        if receiver["name"] == "pager":
            pagerduty = receiver["pagerduty_configs"][0]
            pagerduty["routing_key_file"] = str(key)
            pagerduty["url"] = f"{outside}/pagerduty"
            receiver["webhook_configs"] = [{"url": f"{outside}/webhook", "send_resolved": True}]
        if receiver["name"] == "ticket":
            receiver["webhook_configs"] = [{"url": f"{outside}/ticket", "send_resolved": True}]
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _prometheus_config(workdir: Path, outside: str, am_port: int) -> Path:
    path = workdir / "prometheus.yml"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in _scaled_rules(workdir)],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{am_port}"]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "outagewatch",
                "static_configs": [{"targets": [outside.removeprefix("http://")]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _firing(webhook_post: dict[str, Any]) -> set[str]:
    return {a["labels"]["alertname"] for a in webhook_post["alerts"] if a["status"] == "firing"}


def test_an_outage_pages_once_per_service_with_its_evidence_and_links(
    tmp_path: Path, outside: Outside
) -> None:
    am_port = free_port()
    with (
        alertmanager(
            _alertmanager_config(tmp_path, outside.url), tmp_path, am_port, ALERTMANAGER_URL
        ),
        prometheus(_prometheus_config(tmp_path, outside.url, am_port), tmp_path, PROMETHEUS_URL),
    ):
        time.sleep(3)  # a few healthy scrapes first
        assert outside.posts("/pagerduty") == []
        with outside.lock:
            outside.broken = {"claude"}

        # The first page: ServiceDisrupted (no for:), titled with the evidence.
        events = outside.wait("/pagerduty", lambda posts: len(posts) >= 1)
        first = events[0]
        assert first["event_action"] == "trigger"
        assert first["payload"]["summary"] == (
            "claude disrupted: 3/3 probes failing (api HTTP 503, chat HTTP 529 overloaded, "
            "web HTTP 502), reports 12\u00d7 usual, official page: operational"
        )
        assert first["payload"]["severity"] == "critical"
        assert first["client"] == "outagewatch"
        assert first["client_url"].startswith(ALERTMANAGER_URL)
        assert {(link["text"], link["href"]) for link in first["links"]} == {
            ("Runbook", RUNBOOK),
            ("Dashboard", DASHBOARD),
        }

        # The generic webhook carries the same group with Slack-ready annotations.
        hooks = outside.wait("/webhook", lambda posts: len(posts) >= 1)
        assert hooks[0]["groupLabels"] == {"service": "claude"}
        assert hooks[0]["externalURL"] == ALERTMANAGER_URL.rstrip("/")
        alert = next(
            a
            for a in hooks[0]["alerts"]
            if a["labels"]["alertname"] == "OutagewatchServiceDisrupted"
        )
        assert alert["annotations"]["title"] == first["payload"]["summary"]
        assert alert["annotations"]["runbook_url"] == RUNBOOK
        assert alert["annotations"]["dashboard_url"] == DASHBOARD
        assert alert["annotations"]["summary"] == "A watched service is disrupted."
        assert alert["generatorURL"].startswith(PROMETHEUS_URL)

        # EndpointDown (for: 5s here) joins the same group later and is sent as firing,
        # in the same PagerDuty incident (one dedup key).
        hooks = outside.wait(
            "/webhook", lambda posts: any("OutagewatchEndpointDown" in _firing(p) for p in posts)
        )
        joined = next(p for p in hooks if "OutagewatchEndpointDown" in _firing(p))
        assert joined["groupLabels"] == {"service": "claude"}
        assert _firing(joined) == {"OutagewatchServiceDisrupted", "OutagewatchEndpointDown"}
        down = {a["labels"]["probe"] for a in joined["alerts"] if "probe" in a["labels"]}
        assert down == {"api", "web"}  # an overloaded chatbot is not "down"
        events = outside.wait(
            "/pagerduty", lambda posts: any("EndpointDown" in json.dumps(p) for p in posts)
        )
        assert {e["dedup_key"] for e in events} == {first["dedup_key"]}
        assert {e["event_action"] for e in events} == {"trigger"}

        # A second service's outage is a second incident.
        with outside.lock:
            outside.broken = {"claude", "chatgpt"}
        events = outside.wait(
            "/pagerduty", lambda posts: any("chatgpt disrupted" in json.dumps(p) for p in posts)
        )
        chatgpt = next(e for e in events if e["payload"]["summary"].startswith("chatgpt "))
        assert chatgpt["dedup_key"] != first["dedup_key"]

        # Repaired: the incident resolves.
        with outside.lock:
            outside.broken = set()
        events = outside.wait(
            "/pagerduty",
            lambda posts: (
                {p["dedup_key"] for p in posts if p["event_action"] == "resolve"}
                == {first["dedup_key"], chatgpt["dedup_key"]}
            ),
        )
        assert outside.posts("/ticket") == []
