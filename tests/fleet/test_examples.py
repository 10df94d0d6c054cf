"""The fleet examples in deploy/fleet are valid Prometheus configs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool

FLEET = Path(__file__).parents[2] / "deploy" / "fleet"


@pytest.mark.parametrize("name", sorted(p.name for p in FLEET.glob("prometheus-*.yml")))
def test_prometheus_example_passes_promtool(name: str) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(FLEET / name)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_example_is_described_in_the_readme() -> None:
    readme = (FLEET / "README.md").read_text()
    assert all(f"`{p.name}`" in readme for p in FLEET.glob("*.yml"))


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=FLEET,
    )


def test_global_rules_are_lint_clean_and_pass_their_unit_tests() -> None:
    checked = _promtool("check", "rules", "--lint=all", "rules-global.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr
    tested = _promtool("test", "rules", "rules-global_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_global_alert_has_a_firing_and_a_silent_case_and_its_annotations() -> None:
    groups = yaml.safe_load((FLEET / "rules-global.yml").read_text())["groups"]
    alerts = [rule for group in groups for rule in group["rules"] if "alert" in rule]
    cases = [
        case
        for test in yaml.safe_load((FLEET / "rules-global_test.yml").read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    fired = {
        (case["alertname"], alert["exp_labels"]["severity"])
        for case in cases
        for alert in case.get("exp_alerts") or []
    }
    silent = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert {(rule["alert"], rule["labels"]["severity"]) for rule in alerts} <= fired
    assert {rule["alert"] for rule in alerts} <= silent
    fleet_doc = (FLEET.parents[1] / "docs" / "fleet.md").read_text()
    for rule in alerts:
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        # The runbook of the global rules is a section of docs/fleet.md.
        anchor = annotations["runbook_url"].rpartition("#")[2]
        assert f"### {rule['alert']}\n" in fleet_doc
        assert anchor == rule["alert"].lower()
