"""Rules, rule tests and dashboards use only metrics and labels the daemon exports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as pp
import pytest
import yaml

from tests.deploy.dashboards import committed, concrete, queries
from tests.deploy.promql import LabelChecker

ROOT = Path(__file__).parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
# Recording rules first: alerts read what they record.
RULE_FILES = [PROMETHEUS / "rules" / "recording.yml", PROMETHEUS / "rules" / "alerts.yml"]


# Metrics another branch adds to the daemon (the vantage check, issue 18) that the rules
# already name in an `unless` (a no-op while absent). Delete once merged.
def _rules() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                yield path.name, rule


def checker_with_recording_rules() -> tuple[LabelChecker, list[str]]:
    """A checker that knows every recorded series; the problems found on the way."""
    checker = LabelChecker()
    problems = []
    for file, rule in _rules():
        if "record" in rule:
            extra = (rule.get("labels") or {}).keys()
            for problem in checker.record(rule["record"], rule["expr"], extra):
                problems.append(f"{file} {rule['record']}: {problem}")
    return checker, problems


def test_every_rule_uses_catalogued_metrics_and_their_labels() -> None:
    checker, problems = checker_with_recording_rules()
    for file, rule in _rules():
        if "alert" in rule:
            for problem in checker.check(rule["expr"]):
                problems.append(f"{file} {rule['alert']}: {problem}")
    assert problems == []


def test_every_dashboard_query_uses_catalogued_metrics_and_their_labels() -> None:
    checker, _ = checker_with_recording_rules()
    problems = []
    count = 0
    for name, board in committed().items():
        for title, expr in queries(board):
            count += 1
            for problem in checker.check(concrete(expr, "5m")):
                problems.append(f"{name} {title}: {problem}")
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                # label_values(metric, label): the metric must carry the label.
                metric, _, label = variable["query"][len("label_values(") : -1].partition(", ")
                for problem in checker.check(f"max by ({label}) ({metric})"):
                    problems.append(f"{name} variable {variable['name']}: {problem}")
    assert count >= 40
    assert problems == []


def test_promtool_tests_feed_the_rules_series_the_daemon_exports() -> None:
    checker = LabelChecker()
    problems = []
    for path in sorted((PROMETHEUS / "tests").glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for series in test.get("input_series", []):
                found = checker.check(series["series"]) or _missing(checker, series["series"])
                problems.extend(f"{path.name} {test['name']}: {problem}" for problem in found)
    assert problems == []


def _missing(checker: LabelChecker, series: str) -> list[str]:
    """A test series lacking a label the daemon always exports on it."""
    selector = pp.parse(series)
    have = {matcher.name for matcher in selector.matchers.matchers}
    lacking = checker.known.get(selector.name, frozenset()) - have
    return [f"{series} lacks {sorted(lacking)}"] if lacking else []


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("outagewatch_probe_sucess == 0", "unknown metric outagewatch_probe_sucess"),
        ('outagewatch_chat_outcome{class="ok"}', "outagewatch_chat_outcome has no label class"),
        ('outagewatch_chat_outcome{outcome=~"ok|overload"}', "outcome='overload' is never"),
        ("sum by (reason) (outagewatch_probes_total)", "no label reason"),
        ("sum by (service) (rate(outagewatch_probe_failures_total[5m]))", ""),
        (
            "max by (service) (outagewatch_status_level) and on (probe) outagewatch_probe_success",
            "and on (left side): no label probe",
        ),
        ("histogram_quantile(0.5, rate(outagewatch_chat_ttft_seconds_count[5m]))", "no label le"),
        (
            "outagewatch_store_size_bytes * on (job, instance) group_left (version) "
            "outagewatch_build_info",
            "",
        ),
        ('outagewatch_chat_budget_remaining_ratio{resource="cost", probe="chat"}', ""),
        ('outagewatch_probe_failure_reasons_total{reason="overloaded"}', ""),
        (
            'outagewatch_probe_failure_reasons_total{reason="overload"}',
            "reason='overload' is never",
        ),
        ("sum by (probe) (outagewatch_probe_failure_reasons_total)", "no label probe"),
        # Per probe without reasons since issue 20; older daemons' labels may be dropped.
        ('outagewatch_probe_failures_total{reason="tls"}', "has no label reason"),
        ("sum by (reason) (rate(outagewatch_probe_failures_total[5m]))", "no label reason"),
        ("sum without (reason, sub_reason) (rate(outagewatch_probe_failures_total[5m]))", ""),
        ("sum without (reason) (rate(outagewatch_probes_total[5m]))", "no label reason"),
        ('outagewatch_chat_runs_total{outcome="overloaded"}', ""),
        ('outagewatch_source_failures_total{reason="credential"}', ""),
        ('outagewatch_spike_active{signal="ttft"}', "signal='ttft' is never"),
        ('outagewatch_disruption_state{state="down"}', "state='down' is never"),
        ('outagewatch_detection_incidents_total{outcome="early"}', ""),
        ("sum(outagewatch_store_size_bytes{service='x'})", "has no label service"),
    ],
)
def test_the_checker_finds_names_labels_and_values_that_do_not_exist(
    expr: str, problem: str
) -> None:
    problems = LabelChecker().check(expr)
    if problem:
        assert any(problem in found for found in problems), problems
    else:
        assert problems == []


def test_the_checker_learns_the_labels_a_recording_rule_keeps() -> None:
    checker = LabelChecker()
    assert checker.record("service:x:sum", "sum by (service) (outagewatch_probes_total)") == []
    assert checker.check("service:x:sum{service='a'}") == []
    assert "no label probe" in checker.check("service:x:sum{probe='a'}")[0]
