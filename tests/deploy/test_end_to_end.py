"""The daemon, Prometheus and Alertmanager together: a broken endpoint pages, a fixed one resolves.

Real processes on loopback: Debian's `prometheus` and `prometheus-alertmanager`, the
daemon (`outagewatch run`), a fake endpoint for it to probe and a webhook receiver
standing in for the pager. The shipped rules and routing are used with two changes,
both made to copies in a temp dir:

- every alert's `for:` is the production one divided by 60 (5m -> 5s), with
  expressions untouched; Prometheus scrapes and evaluates every second;
- Alertmanager's receivers become local webhooks and its group_wait/group_interval
  become 1s/2s; routes and inhibitions stay as shipped.

After the page and its resolution, every PromQL expression of every rule and every
dashboard panel runs against that Prometheus.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from tests.deploy.dashboards import committed, concrete, queries
from tests.deploy.servers import (
    LOOPBACK,
    alertmanager,
    free_port,
    http_json,
    prometheus,
    running,
)

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
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval: four scrape intervals
SLACK = 5.0  # process scheduling, HTTP round trips, Prometheus' notifier batching


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


def _alert_for(alertname: str) -> float:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    return max(
        _seconds(rule["for"]) / FOR_SCALE
        for group in rules["groups"]
        for rule in group["rules"]
        if rule.get("alert") == alertname
    )


@dataclass
class World:
    """What the fake endpoint answers, and what reached the webhook."""

    status: int = 200
    notifications: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, receiver: str) -> list[tuple[float, dict[str, Any]]]:
        with self.lock:
            return [(t, body) for t, name, body in self.notifications if name == receiver]


def _handler(world: World) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the endpoint the daemon probes
            body = b'{"ok": true}'
            self.send_response(world.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # Alertmanager's webhooks: /pager, /ticket
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(length))
            with world.lock:
                world.notifications.append((time.monotonic(), self.path.strip("/"), payload))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def world() -> Iterator[tuple[World, int]]:
    state = World()
    server = ThreadingHTTPServer((LOOPBACK, 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _write_configs(workdir: Path, fake_port: int, daemon_port: int, am_port: int) -> Path:
    (workdir / "outagewatch.yml").write_text(
        yaml.safe_dump(
            {
                "services": {
                    "e2e": {
                        "probes": {
                            "api": {
                                "kind": "http",
                                "url": f"http://{LOOPBACK}:{fake_port}/v1/models",
                                "interval": f"{PROBE_INTERVAL}s",
                                "timeout": "0.5s",
                            }
                        }
                    }
                }
            }
        )
    )
    rule_files = _scaled_rules(workdir)
    prometheus_yml = workdir / "prometheus.yml"
    prometheus_yml.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_INTERVAL:g}s",
                    "evaluation_interval": f"{EVALUATION_INTERVAL:g}s",
                },
                "rule_files": [str(p) for p in rule_files],
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
    return prometheus_yml


def _alertmanager_copy(workdir: Path, hook_port: int) -> Path:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"]["group_wait"] = f"{GROUP_WAIT:g}s"
    config["route"]["group_interval"] = f"{GROUP_INTERVAL:g}s"
    for route in config["route"]["routes"]:
        route.pop("group_wait", None)
    hooks = {"pager", "ticket"}
    config["receivers"] = [
        {
            "name": r["name"],
            **(
                {
                    "webhook_configs": [
                        {
                            "url": f"http://{LOOPBACK}:{hook_port}/{r['name']}",
                            "send_resolved": True,
                        }
                    ]
                }
                if r["name"] in hooks
                else {}
            ),
        }
        for r in config["receivers"]
    ]
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _wait_for_page(
    world: World, status: str, since: float, deadline: float
) -> tuple[float, dict[str, Any]]:
    """The first pager notification of `status` for OutagewatchEndpointDown after `since`."""
    end = since + deadline
    while time.monotonic() < end:
        for at, body in world.received("pager"):
            alerts = [
                a for a in body["alerts"] if a["labels"]["alertname"] == "OutagewatchEndpointDown"
            ]
            if at >= since and body["status"] == status and alerts:
                return at, body
        time.sleep(0.1)
    raise AssertionError(
        f"no {status} page within {deadline:.1f}s; received: {world.notifications!r}"
    )


def _query(base: str, expr: str) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = http_json(f"{base}/api/v1/query?query={quote(expr)}")
    except Exception as exc:  # an HTTP 400 carries the PromQL error
        raise AssertionError(f"{expr}: {exc}") from exc
    return answer


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b((?:outagewatch|process|scrape)_[a-z_0-9]+|up)\b", expr))


def test_broken_endpoint_pages_and_repair_resolves(
    tmp_path: Path, world: tuple[World, int]
) -> None:
    state, web_port = world
    daemon_port, am_port = free_port(), free_port()
    prometheus_yml = _write_configs(tmp_path, web_port, daemon_port, am_port)
    am_yml = _alertmanager_copy(tmp_path, web_port)
    daemon_args = [
        str(OUTAGEWATCH),
        "run",
        f"--config.file={tmp_path / 'outagewatch.yml'}",
        f"--web.listen-address={LOOPBACK}:{daemon_port}",
        "--log.format=json",
    ]
    daemon_ready = f"http://{LOOPBACK}:{daemon_port}/-/ready"
    with (
        running(daemon_args, daemon_ready, tmp_path / "daemon.log"),
        alertmanager(am_yml, tmp_path, am_port),
        prometheus(prometheus_yml, tmp_path) as prom,
    ):
        # Healthy first: the probe succeeds and Prometheus has scraped it.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            result = _query(prom, 'outagewatch_probe_success{service="e2e"} == 1')
            if result["data"]["result"]:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the healthy probe never reached Prometheus")

        bound = (
            PROBE_INTERVAL
            + SCRAPE_INTERVAL
            + 2 * EVALUATION_INTERVAL
            + _alert_for("OutagewatchEndpointDown")
            + GROUP_WAIT
            + SLACK
        )
        broken_at = time.monotonic()
        state.status = 503
        paged_at, page = _wait_for_page(state, "firing", broken_at, bound)
        break_to_page = paged_at - broken_at
        labels = next(
            a["labels"]
            for a in page["alerts"]
            if a["labels"]["alertname"] == "OutagewatchEndpointDown"
        )
        assert labels["severity"] == "critical"
        assert labels["service"] == "e2e" and labels["probe"] == "api"
        assert labels["region"] == "test"

        repaired_at = time.monotonic()
        state.status = 200
        resolve_bound = (
            PROBE_INTERVAL + SCRAPE_INTERVAL + 2 * EVALUATION_INTERVAL + GROUP_INTERVAL + SLACK
        )
        resolved_at, _ = _wait_for_page(state, "resolved", repaired_at, resolve_bound)
        repair_to_resolve = resolved_at - repaired_at
        print(
            f"\nbreak -> page {break_to_page:.1f}s (bound {bound:.1f}s); "
            f"repair -> resolved {repair_to_resolve:.1f}s (bound {resolve_bound:.1f}s)"
        )
        assert not state.received("ticket"), "no warning should have fired"

        # Every rule and every dashboard query runs without error; dashboard queries
        # over metrics this run exports return data.
        exported = set(http_json(f"{prom}/api/v1/label/__name__/values")["data"])
        rules = http_json(f"{prom}/api/v1/rules")["data"]["groups"]
        rule_exprs = [rule["query"] for group in rules for rule in group["rules"]]
        assert len(rule_exprs) >= 30
        for expr in rule_exprs:
            assert _query(prom, expr)["status"] == "success", expr
        no_data_yet = []
        for name, board in committed().items():
            for title, expr in queries(board):
                result = _query(prom, concrete(expr, RATE_INTERVAL, service="e2e"))
                assert result["status"] == "success", (name, title)
                missing = _metric_names(expr) - exported
                if missing:
                    no_data_yet.append(f"{name}: {title} ({', '.join(sorted(missing))})")
                else:
                    assert result["data"]["result"], (name, title, expr)
        print("dashboard panels waiting for lens metrics:\n  " + "\n  ".join(no_data_yet))
