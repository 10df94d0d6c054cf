"""The shipped Prometheus rules: lint-clean, unit-tested by promtool, every alert covered."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"
SEVERITIES = {"critical", "warning", "info"}


def _rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


ALERTS = [rule for rule in _rules() if "alert" in rule]


def _promtool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=PROMETHEUS,
    )


def _alert_tests() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                yield case["alertname"], case.get("exp_alerts") or []


def test_rules_are_lint_clean() -> None:
    result = _promtool("check", "rules", "--lint=all", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr


def test_example_prometheus_config_is_valid() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_and_severity_has_a_firing_test_case() -> None:
    fired = {
        (name, alert["exp_labels"]["severity"])
        for name, expected in _alert_tests()
        for alert in expected
    }
    declared = {(rule["alert"], rule["labels"]["severity"]) for rule in ALERTS}
    assert declared - fired == set()


def test_every_alert_has_a_test_case_where_it_stays_silent() -> None:
    silent = {name for name, expected in _alert_tests() if not expected}
    assert {rule["alert"] for rule in ALERTS} - silent == set()


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_carries_severity_annotations_and_a_runbook_section(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Outagewatch[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) - {"title"} == {
        "summary",
        "description",
        "runbook_url",
        "dashboard_url",
    }
    # A page about a service carries a headline naming the service and the evidence.
    if rule["labels"]["severity"] == "critical" and "var-service" in annotations["dashboard_url"]:
        assert "$labels.service" in annotations["title"]
    assert "{{" not in annotations["summary"]  # summaries are static sentences
    anchor = annotations["runbook_url"].rpartition("#")[2]
    assert anchor == rule["alert"].lower()
    assert f"\n## {rule['alert']}\n" in RUNBOOKS.read_text()


def test_recording_rules_follow_level_metric_operations() -> None:
    records = [rule["record"] for rule in _rules() if "record" in rule]
    assert records
    for name in records:
        assert re.fullmatch(r"[a-z_]+:outagewatch_[a-z_]+:[a-z0-9_:]+", name), name


def test_runbooks_have_no_section_without_an_alert() -> None:
    sections = set(re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), flags=re.MULTILINE))
    assert sections == {rule["alert"] for rule in ALERTS}
