"""Three daemons split 30 probes and a real Prometheus sees each exactly once; a reshard.

Real processes on loopback: three ``outagewatch run`` instances with the same 30 HTTP
probes and ``shard: {index: I, count: 3}``, a local target that counts the requests
for each probe's path, and Debian's Prometheus scraping the three daemons.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from outagewatch.keys import probe_source_key
from outagewatch.sources import hashmod
from tests.conftest import require_tool
from tests.deploy.servers import LOOPBACK, free_port, http_json, prometheus, running

pytestmark = pytest.mark.integration

TARGETS = 30
INTERVAL = 1.0
PROBES = [f"t{i:02d}" for i in range(TARGETS)]


class Target(ThreadingHTTPServer):
    """Answers 200 to every GET and counts them by path."""

    daemon_threads = True

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with target.lock:
                    target.hits[self.path.lstrip("/")] += 1
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\n")

            def log_message(self, *_args: Any) -> None:
                return None

        super().__init__((LOOPBACK, 0), Handler)

    def take(self) -> Counter[str]:
        """The counts so far, and start counting afresh."""
        with self.lock:
            hits, self.hits = self.hits, Counter()
        return hits


@contextlib.contextmanager
def target_server() -> Iterator[Target]:
    server = Target()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def write_config(path: Path, target: str, index: int, count: int) -> None:
    probes = "\n".join(
        f"      {p}: {{kind: http, url: '{target}/{p}', interval: 1s, timeout: 500ms}}"
        for p in PROBES
    )
    path.write_text(
        f"scheduler: {{jitter_ratio: 0}}\n"
        f"shard: {{index: {index}, count: {count}}}\n"
        f"storage: {{path: {path.parent / f'store-{index}.db'}}}\n"
        f"services:\n  svc:\n    probes:\n{probes}\n"
    )


def owned(index: int, count: int) -> set[str]:
    """The probes Prometheus' hashmod puts in shard ``index`` of ``count``."""
    return {p for p in PROBES if hashmod(probe_source_key("svc", p), count) == index}


def probes_on(url: str) -> set[str]:
    """The probes a daemon's /metrics reports runs for."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        line.split('probe="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("outagewatch_probes_total{")
    }


def wait_for(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.2)
    raise AssertionError(f"not within {within}s: {what}")


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    answer = http_json(f"{prom}/api/v1/query?query={urllib.request.quote(expr)}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_each_target_is_probed_by_one_instance_and_a_reshard_keeps_it_so(
    tmp_path: Path,
) -> None:
    require_tool("prometheus")
    # The shards cover everything and none is empty (else the test would prove little).
    assert set().union(*(owned(i, 3) for i in range(3))) == set(PROBES)
    assert all(owned(i, 3) for i in range(3))
    with contextlib.ExitStack() as stack:
        target = stack.enter_context(target_server())
        target_url = f"http://{LOOPBACK}:{target.server_address[1]}"
        daemons: list[tuple[Path, str, Any]] = []
        for index in range(3):
            config, port = tmp_path / f"outagewatch-{index}.yml", free_port()
            write_config(config, target_url, index, 3)
            url = f"http://{LOOPBACK}:{port}"
            args = [sys.executable, "-m", "outagewatch.cli", "run", "--config.file", str(config)]
            args += ["--web.listen-address", f"{LOOPBACK}:{port}", "--log.format", "json"]
            proc = stack.enter_context(
                running(args, f"{url}/-/ready", tmp_path / f"daemon-{index}.log")
            )
            daemons.append((config, url, proc))
        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n  - job_name: outagewatch\n    static_configs:\n"
            f"      - targets: [{', '.join(repr(u.split('//')[1]) for _, u, _ in daemons)}]\n"
            "        labels: {region: test}\n"
            # Prometheus' own hashmod of each probe's source key, as a label to compare.
            "    metric_relabel_configs:\n"
            "      - {source_labels: [service, probe], regex: '(.+);(.+)',"
            " target_label: __tmp_key, replacement: '${1}/probe/${2}'}\n"
            "      - {source_labels: [__tmp_key], action: hashmod, modulus: 3,"
            " target_label: prometheus_shard}\n"
        )
        prom = stack.enter_context(prometheus(prom_config, tmp_path))

        # Prometheus sees every probe once, each from the instance that owns it.
        def prometheus_sees_three_shards() -> bool:
            by_instance = query(prom, "count by (instance) (outagewatch_probes_total)")
            total = sum(int(r["value"][1]) for r in by_instance)
            return len(by_instance) == 3 and total == TARGETS

        wait_for(prometheus_sees_three_shards, 20, "three instances with 30 probes in all")
        by_probe = query(prom, "count by (probe) (outagewatch_probes_total)")
        assert {r["metric"]["probe"] for r in by_probe} == set(PROBES)
        assert {r["value"][1] for r in by_probe} == {"1"}
        for index, (_config, url, _proc) in enumerate(daemons):
            instance = url.split("//")[1]
            series = query(prom, f'outagewatch_probes_total{{instance="{instance}"}}')
            assert {r["metric"]["probe"] for r in series} == owned(index, 3)
            assert {r["metric"]["prometheus_shard"] for r in series} == {str(index)}
            assert all(r["metric"]["region"] == "test" for r in series)
        # ... and the target sees each probe about once a second, never twice.
        target.take()
        time.sleep(3 * INTERVAL)
        hits = target.take()
        assert set(hits) == set(PROBES)
        assert all(2 <= n <= 4 for n in hits.values()), hits

        # Reshard from three instances to two: the first two reload, the third leaves.
        for index, (config, _url, proc) in enumerate(daemons[:2]):
            write_config(config, target_url, index, 2)
            proc.send_signal(1)  # SIGHUP
        for index, (_config, url, _proc) in enumerate(daemons[:2]):
            wait_for(lambda u=url, i=index: probes_on(u) == owned(i, 2), 10, "reload")
        daemons[2][2].terminate()
        daemons[2][2].wait(10)
        time.sleep(INTERVAL)  # every moved probe has had its first run
        target.take()
        time.sleep(3 * INTERVAL)
        hits = target.take()
        assert set(hits) == set(PROBES), f"gaps: {set(PROBES) - set(hits)}"
        assert all(2 <= n <= 4 for n in hits.values()), f"doubles or gaps: {hits}"

        def prometheus_sees_two_shards() -> bool:
            by_instance = query(prom, "count by (instance) (outagewatch_probes_total)")
            return sorted(int(r["value"][1]) for r in by_instance) == sorted(
                len(owned(i, 2)) for i in range(2)
            )

        wait_for(prometheus_sees_two_shards, 10, "Prometheus sees the two new shards")
        by_probe = query(prom, "count by (probe) (outagewatch_probes_total)")
        assert {r["metric"]["probe"] for r in by_probe} == set(PROBES)
        assert {r["value"][1] for r in by_probe} == {"1"}
