"""Two clustered Alertmanagers, each told of the same alert by two Prometheus servers,
send one notification.

Real processes on loopback: Debian's ``prometheus-alertmanager`` twice, gossiping
over ``--cluster.peer``, and Debian's ``prometheus`` twice with the same always-firing
rule, each sending to both Alertmanagers (deploy/fleet/README.md). A local webhook
receiver stands in for the pager.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.deploy.servers import LOOPBACK, free_port, http_json, running

pytestmark = pytest.mark.integration

PEER_TIMEOUT = 1.0  # how long the second member waits for the first one's notification
GROUP_WAIT = 1.0


class Webhook(ThreadingHTTPServer):
    """Keeps every notification posted to it."""

    daemon_threads = True

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.notifications.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__((LOOPBACK, 0), Handler)


@contextlib.contextmanager
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def member(config: Path, workdir: Path, name: str, gossip: int, peer: int) -> Iterator[str]:
    """One cluster member on loopback; yields its base URL."""
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    args = [
        "prometheus-alertmanager",
        f"--config.file={config}",
        f"--storage.path={workdir / name}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--cluster.listen-address={LOOPBACK}:{gossip}",
        f"--cluster.advertise-address={LOOPBACK}:{gossip}",
        f"--cluster.peer={LOOPBACK}:{peer}",
        f"--cluster.peer-timeout={PEER_TIMEOUT:g}s",
        "--cluster.settle-timeout=2s",
        "--cluster.pushpull-interval=1s",
        "--log.level=warn",
    ]
    with running(args, f"{base}/-/ready", workdir / f"{name}.log"):
        yield base


def test_a_clustered_pair_sends_one_notification_for_an_alert_both_received(
    tmp_path: Path,
) -> None:
    require_tool("prometheus-alertmanager")
    require_tool("prometheus")
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(webhook())
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(
            "route:\n  receiver: pager\n  group_by: [alertname]\n"
            f"  group_wait: {GROUP_WAIT:g}s\n  group_interval: 1m\n  repeat_interval: 1h\n"
            "receivers:\n  - name: pager\n    webhook_configs:\n"
            f"      - url: http://{LOOPBACK}:{hook.server_address[1]}/\n"
        )
        gossip = [free_port(), free_port()]
        members = [
            stack.enter_context(member(am_config, tmp_path, f"am{i}", gossip[i], gossip[1 - i]))
            for i in range(2)
        ]
        status = http_json(f"{members[0]}/api/v2/status")
        assert len(status["cluster"]["peers"]) == 2, status["cluster"]

        rules = tmp_path / "rules.yml"
        rules.write_text(
            "groups:\n  - name: test\n    rules:\n"
            "      - alert: OutagewatchEndpointDown\n        expr: vector(1)\n"
            "        labels: {severity: critical, service: claude}\n"
        )
        targets = ", ".join(repr(m.split("//")[1]) for m in members)
        for name in ("prom-a", "prom-b"):
            workdir = tmp_path / name
            workdir.mkdir()
            config = workdir / "prometheus.yml"
            config.write_text(
                "global: {evaluation_interval: 1s}\n"
                f"rule_files: [{rules}]\n"
                "alerting:\n  alertmanagers:\n"
                f"    - static_configs:\n        - targets: [{targets}]\n"
            )
            port = free_port()
            args = [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                # Alerts evaluated before the Alertmanagers are discovered are dropped;
                # resend each second, not each minute.
                "--rules.alert.resend-delay=1s",
                "--log.level=warn",
            ]
            url = f"http://{LOOPBACK}:{port}"
            stack.enter_context(running(args, f"{url}/-/ready", workdir / "prometheus.log"))

        # Both members hold the alert (from both Prometheus servers) ...
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(http_json(f"{m}/api/v2/alerts") for m in members) and hook.notifications:
                break
            time.sleep(0.2)
        assert all(http_json(f"{m}/api/v2/alerts") for m in members)
        # ... and once the second member's turn has long passed, one notification went out.
        time.sleep(GROUP_WAIT + 3 * PEER_TIMEOUT + 2)
        assert len(hook.notifications) == 1, hook.notifications
        alerts = hook.notifications[0]["alerts"]
        assert [a["labels"]["alertname"] for a in alerts] == ["OutagewatchEndpointDown"]
