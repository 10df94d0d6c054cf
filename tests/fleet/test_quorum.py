"""Confirmation from more than one place: one region's broken network never pages,
a broken target pages once.

Real processes on loopback: three ``outagewatch run`` instances sharing
``shard: {count: 3, replicas: 2}``, each with its own ``--shard.index`` and in its own
"region" (a target label set by Prometheus); Debian's Prometheus scraping them with
the shipped ``deploy/fleet/rules-global.yml`` (hold times cut from minutes to
seconds, nothing else changed); Debian's Alertmanager routing critical alerts to a
pager webhook and the rest to a ticket one. The third instance's probes point at a
port nobody listens on: its "network" is broken.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from outagewatch.keys import probe_source_key
from outagewatch.sources import replica_shards
from tests.conftest import require_tool
from tests.deploy.servers import LOOPBACK, alertmanager, free_port, http_json, running

pytestmark = pytest.mark.integration

RULES = Path(__file__).parents[2] / "deploy" / "fleet" / "rules-global.yml"
PROBES = [f"p{i}" for i in range(6)]
REGIONS = ["eu", "us", "ap"]  # instance i runs in REGIONS[i]
BROKEN = 2  # the instance whose network is broken
HOLD = 3  # seconds: every `for:` of the shipped rules, cut down for the test


class Target(ThreadingHTTPServer):
    """The watched service: 200 while up, 503 once broken."""

    daemon_threads = True

    def __init__(self) -> None:
        self.broken = False
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(503 if target.broken else 200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__((LOOPBACK, 0), Handler)


class Webhook(ThreadingHTTPServer):
    """Keeps every notification, by path (/pager, /ticket)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {"/pager": [], "/ticket": []}
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    hook.received.setdefault(self.path, []).append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__((LOOPBACK, 0), Handler)

    def notifications(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.received[path])


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def write_config(path: Path, target: str, index: int) -> None:
    probes = "\n".join(
        f"      {p}: {{kind: http, url: '{target}/{p}', interval: 1s, timeout: 500ms}}"
        for p in PROBES
    )
    path.write_text(
        f"scheduler: {{jitter_ratio: 0}}\n"
        f"shard: {{count: 3, replicas: 2}}\n"  # shared; --shard.index per daemon
        f"storage: {{path: {path.parent / f'store-{index}.db'}}}\n"
        f"services:\n  svc:\n    probes:\n{probes}\n"
    )


def short_rules(path: Path) -> None:
    """The shipped global rules with every hold time cut to HOLD seconds."""
    rules = yaml.safe_load(RULES.read_text())
    held = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{HOLD}s"
                held += 1
    assert held == 2
    path.write_text(yaml.safe_dump(rules, sort_keys=False))


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    answer = http_json(f"{prom}/api/v1/query?query={urllib.parse.quote(expr)}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def firing(prom: str, alertname: str) -> list[dict[str, str]]:
    series = query(prom, f'ALERTS{{alertname="{alertname}",alertstate="firing"}}')
    return [s["metric"] for s in series]


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.25)
    raise AssertionError(f"not within {within}s: {what}")


def test_one_region_failing_warns_and_the_target_failing_pages_once(tmp_path: Path) -> None:
    require_tool("prometheus")
    require_tool("prometheus-alertmanager")
    runs = {p: set(replica_shards(probe_source_key("svc", p), 3, 2)) for p in PROBES}
    on_broken = {p for p, shards in runs.items() if BROKEN in shards}
    # The broken instance shares some probes and not others (else the test proves less).
    assert on_broken and on_broken != set(PROBES)
    with contextlib.ExitStack() as stack:
        target = Target()
        target_url = stack.enter_context(serving(target))
        hook = Webhook()
        hook_url = stack.enter_context(serving(hook))
        black_hole = f"http://{LOOPBACK}:{free_port()}"  # nothing listens: refused

        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(
            "route:\n  receiver: ticket\n  group_by: [alertname, service]\n"
            "  group_wait: 1s\n  group_interval: 5m\n  repeat_interval: 1h\n"
            "  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n"
            "receivers:\n"
            f"  - name: pager\n    webhook_configs: [{{url: '{hook_url}/pager'}}]\n"
            f"  - name: ticket\n    webhook_configs: [{{url: '{hook_url}/ticket'}}]\n"
        )
        am = stack.enter_context(alertmanager(am_config, tmp_path))

        instances = []
        for index in range(3):
            config, port = tmp_path / f"outagewatch-{index}.yml", free_port()
            write_config(config, black_hole if index == BROKEN else target_url, index)
            args = [sys.executable, "-m", "outagewatch.cli", "run", "--config.file", str(config)]
            args += ["--shard.index", str(index)]
            args += ["--web.listen-address", f"{LOOPBACK}:{port}", "--log.format", "json"]
            url = f"http://{LOOPBACK}:{port}"
            stack.enter_context(running(args, f"{url}/-/ready", tmp_path / f"daemon-{index}.log"))
            instances.append(f"{LOOPBACK}:{port}")

        rules = tmp_path / "rules-global.yml"
        short_rules(rules)
        prom_dir = tmp_path / "prometheus"
        prom_dir.mkdir()
        prom_config = prom_dir / "prometheus.yml"
        targets = "".join(
            f"      - targets: ['{instance}']\n        labels: {{region: {region}}}\n"
            for instance, region in zip(instances, REGIONS, strict=True)
        )
        prom_config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            "alerting:\n  alertmanagers:\n"
            f"    - static_configs: [{{targets: ['{am.split('//')[1]}']}}]\n"
            f"scrape_configs:\n  - job_name: outagewatch\n    static_configs:\n{targets}"
        )
        port = free_port()
        prom = f"http://{LOOPBACK}:{port}"
        prom_args = [
            "prometheus",
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--rules.alert.resend-delay=1s",  # alerts from before the AM was found: 1 s
            "--log.level=warn",
        ]
        stack.enter_context(running(prom_args, f"{prom}/-/ready", prom_dir / "prometheus.log"))

        # Each probe runs in the two regions of its replica shards, the first hashmod's.
        def every_probe_in_two_regions() -> bool:
            series = query(prom, "outagewatch_probe_success")
            where: dict[str, set[int]] = {}
            for s in series:
                where.setdefault(s["metric"]["probe"], set()).add(
                    REGIONS.index(s["metric"]["region"])
                )
            return where == runs

        wait_for(every_probe_in_two_regions, 30, "each probe's two replicas in Prometheus")

        # (a) The broken region's probes fail there only: a warning naming it, no page.
        def one_region_warnings() -> bool:
            alerts = firing(prom, "OutagewatchEndpointDownInOneRegion")
            return {(a["probe"], a["region"]) for a in alerts} == {
                (p, REGIONS[BROKEN]) for p in on_broken
            }

        wait_for(one_region_warnings, 30, "one warning per probe of the broken region")
        wait_for(lambda: bool(hook.notifications("/ticket")), 15, "the warning reaches a ticket")
        time.sleep(HOLD + 3)  # a page would have had its hold time and group_wait by now
        assert firing(prom, "OutagewatchEndpointDownConfirmed") == []
        assert hook.notifications("/pager") == []
        ticket = hook.notifications("/ticket")[0]
        assert {a["labels"]["alertname"] for a in ticket["alerts"]} == {
            "OutagewatchEndpointDownInOneRegion"
        }
        assert {a["labels"]["region"] for a in ticket["alerts"]} == {REGIONS[BROKEN]}

        # (b) The target itself breaks: every probe fails in two regions, one page.
        target.broken = True

        def every_probe_confirmed() -> bool:
            alerts = firing(prom, "OutagewatchEndpointDownConfirmed")
            return sorted(a["probe"] for a in alerts) == PROBES

        wait_for(every_probe_confirmed, 30, "every probe confirmed down by two regions")
        wait_for(lambda: bool(hook.notifications("/pager")), 15, "the page")
        assert firing(prom, "OutagewatchEndpointDownInOneRegion") == []
        time.sleep(3)  # no second page follows (group_interval is 5 minutes)
        pages = hook.notifications("/pager")
        assert len(pages) == 1, pages
        assert {a["labels"]["alertname"] for a in pages[0]["alerts"]} == {
            "OutagewatchEndpointDownConfirmed"
        }
        assert {a["labels"]["service"] for a in pages[0]["alerts"]} == {"svc"}
        assert {a["labels"]["severity"] for a in pages[0]["alerts"]} == {"critical"}
