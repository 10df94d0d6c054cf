"""The shipped Alertmanager config: valid, routes by severity, inhibits as documented."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.servers import alertmanager, http_json
from tests.deploy.test_prometheus_rules import ALERTS

CONFIG = Path(__file__).parents[2] / "deploy" / "alertmanager" / "alertmanager.yml"
RECEIVER_BY_SEVERITY = {"critical": "pager", "warning": "ticket", "info": "none"}


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["amtool", *args], capture_output=True, text=True, timeout=30, check=False
    )


def _route(*labels: str) -> str:
    result = _amtool("config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_config_is_valid() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_secrets_are_read_from_files() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    pager = next(r for r in config["receivers"] if r["name"] == "pager")
    assert "routing_key_file" in pager["pagerduty_configs"][0]
    ticket = next(r for r in config["receivers"] if r["name"] == "ticket")
    auth = ticket["webhook_configs"][0]["http_config"]["authorization"]
    assert set(auth) == {"type", "credentials_file"}


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_each_alert_routes_by_its_severity(rule: dict[str, Any]) -> None:
    severity = rule["labels"]["severity"]
    labels = [f"alertname={rule['alert']}", f"severity={severity}", "service=claude"]
    assert _route(*labels) == RECEIVER_BY_SEVERITY[severity]


def test_an_alert_without_severity_goes_nowhere() -> None:
    assert _route("alertname=Something", "service=claude") == "none"


def _silent_copy(tmp_path: Path) -> Path:
    """The shipped routing and inhibitions with receivers that send nothing anywhere."""
    config = yaml.safe_load(CONFIG.read_text())
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, "severity": severity, **labels}}


def _suppressed(base: str) -> dict[tuple[str, str], bool]:
    """Whether each alert is suppressed, keyed by name/severity and service (or instance)."""
    states = {}
    for alert in http_json(f"{base}/api/v2/alerts"):
        labels = alert["labels"]
        name = f"{labels['alertname']}/{labels['severity']}"
        subject = labels.get("service") or labels.get("instance", "")
        states[name, subject] = alert["status"]["state"] == "suppressed"
    return states


def _wait_for(
    base: str, done: Callable[[dict[tuple[str, str], bool]], bool]
) -> dict[tuple[str, str], bool]:
    """Poll until ``done`` holds: the inhibitor learns new source alerts asynchronously."""
    deadline = time.monotonic() + 10
    states = _suppressed(base)
    while time.monotonic() < deadline:
        if done(states):
            return states
        time.sleep(0.1)
        states = _suppressed(base)
    return states


def test_inhibitions_silence_what_the_runbooks_say(tmp_path: Path) -> None:
    with alertmanager(_silent_copy(tmp_path), tmp_path) as base:
        http_json(
            f"{base}/api/v2/alerts",
            [
                _alert("OutagewatchServiceDisrupted", "critical", service="claude"),
                _alert("OutagewatchReportSpike", "warning", service="claude"),
                _alert("OutagewatchReportSpike", "warning", service="chatgpt"),
                _alert("OutagewatchChatbotOverloaded", "critical", service="gemini", probe="c"),
                _alert("OutagewatchChatbotOverloaded", "warning", service="gemini", probe="c"),
                _alert("OutagewatchDaemonDown", "critical", job="outagewatch", instance="a"),
                _alert("OutagewatchSourceStale", "warning", instance="a", source="s"),
                _alert("OutagewatchSourceStale", "warning", instance="b", source="s"),
            ],
        )
        expected = {
            ("OutagewatchServiceDisrupted/critical", "claude"): False,
            ("OutagewatchReportSpike/warning", "claude"): True,
            ("OutagewatchReportSpike/warning", "chatgpt"): False,
            ("OutagewatchChatbotOverloaded/critical", "gemini"): False,
            ("OutagewatchChatbotOverloaded/warning", "gemini"): True,
            ("OutagewatchDaemonDown/critical", "a"): False,
            ("OutagewatchSourceStale/warning", "a"): True,
            ("OutagewatchSourceStale/warning", "b"): False,
        }
        assert _wait_for(base, lambda states: states == expected) == expected

        # No daemon at all: everything else is silenced.
        http_json(
            f"{base}/api/v2/alerts",
            [_alert("OutagewatchDaemonAbsent", "critical", job="outagewatch")],
        )
        states = _wait_for(base, lambda states: len(states) == 9 and sum(states.values()) == 8)
        assert states.pop(("OutagewatchDaemonAbsent/critical", "")) is False
        assert all(states.values()), states


def _render(template: str, data: dict[str, Any], tmp_path: Path) -> str:
    """A template of the shipped config rendered by amtool with ``data``."""
    (tmp_path / "none.tmpl").write_text("")
    (tmp_path / "data.json").write_text(json.dumps(data))
    result = _amtool(
        "template",
        "render",
        f"--template.glob={tmp_path / 'none.tmpl'}",
        f"--template.data={tmp_path / 'data.json'}",
        f"--template.text={template}",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _pagerduty() -> dict[str, Any]:
    pager = next(r for r in yaml.safe_load(CONFIG.read_text())["receivers"] if r["name"] == "pager")
    config: dict[str, Any] = pager["pagerduty_configs"][0]
    return config


def _group(severity: str, *alerts: tuple[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "receiver": "pager",
        "status": "firing" if any(s == "firing" for s, _ in alerts) else "resolved",
        "alerts": [
            {"status": status, "labels": {"severity": severity}, "annotations": annotations}
            for status, annotations in alerts
        ],
        "groupLabels": {"service": "claude"},
        "commonLabels": {"service": "claude", "severity": severity},
        "commonAnnotations": {},
        "externalURL": "https://alertmanager.example.com",
    }


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_pagerduty_severity_is_the_alerts(severity: str, tmp_path: Path) -> None:
    pagerduty = _pagerduty()
    group = _group(severity, ("firing", {"summary": "s"}))
    assert _render(pagerduty["severity"], group, tmp_path) == severity


def test_pagerduty_summary_is_the_first_firing_alerts_title(tmp_path: Path) -> None:
    pagerduty = _pagerduty()
    resolved = ("resolved", {"summary": "old", "title": "claude api failing: old"})
    firing = ("firing", {"summary": "s", "title": "claude disrupted: 3/3 probes failing"})
    untitled = ("firing", {"summary": "Prometheus cannot scrape an outagewatch daemon."})
    description = pagerduty["description"]
    assert _render(description, _group("critical", resolved, firing), tmp_path) == (
        "claude disrupted: 3/3 probes failing"
    )
    assert _render(description, _group("critical", untitled), tmp_path) == (
        "Prometheus cannot scrape an outagewatch daemon."
    )
    assert _render(description, _group("critical", resolved), tmp_path) == (
        "claude api failing: old"
    )
