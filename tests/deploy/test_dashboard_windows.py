"""Panels over sparse signals still draw: TTFT over windows that hold a chat run,
failure counters that may not exist yet shown as 0."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.deploy.dashboards import committed, concrete, panels, queries

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"
# A counter that appears with its first event: until then a panel over it has no series.
EVENT_COUNTERS = re.compile(r"outagewatch_\w*(failures|rejected)_total")


def ttft_queries() -> list[tuple[str, str, str]]:
    return [
        (name, title, expr)
        for name, board in committed().items()
        for title, expr in queries(board)
        if "ttft" in expr
    ]


def test_there_are_ttft_panels() -> None:
    assert {name for name, _, _ in ttft_queries()} == {"overview.json", "service.json"}


@pytest.mark.parametrize("name", sorted(committed()))
def test_no_panel_rates_a_chat_metric_over_the_rate_interval(name: str) -> None:
    # A chat probe runs every 5 minutes: $__rate_interval (4 scrapes) mostly holds none.
    for title, expr in queries(committed()[name]):
        assert not ("outagewatch_chat_" in expr and "$__rate_interval" in expr), (title, expr)


@pytest.mark.parametrize("name", sorted(committed()))
def test_panels_over_event_counters_show_zero_not_no_data(name: str) -> None:
    for panel in panels(committed()[name]):
        if any(EVENT_COUNTERS.search(target["expr"]) for target in panel["targets"]):
            assert panel["fieldConfig"]["defaults"].get("noValue") == "0", panel["title"]


def test_ttft_panels_have_a_point_every_minute_between_five_minute_runs(tmp_path: Path) -> None:
    """promtool evaluates the panels' own queries, with the shipped recording rules,
    over a chat probe observed every 5 minutes (all in the 0.5-1 s bucket, so
    p50 = 0.75 s and p95 = 0.975 s), at every minute of a quarter hour."""
    promtool = require_tool("promtool")
    labels = 'job="outagewatch",instance="a:10060",service="claude",probe="chat"'
    # One run every 5 minutes, sampled every minute, for 40 minutes.
    runs = " ".join(f"{n}x4" for n in range(8))
    series = [
        {"series": f'outagewatch_chat_ttft_seconds_bucket{{{labels},le="{le}"}}', "values": v}
        for le, v in (("0.5", "0x39"), ("1.0", runs), ("+Inf", runs))
    ]
    cases = []
    for _, _title, expr in ttft_queries():
        value = 0.75 if "p50" in expr else 0.975
        for minute in range(20, 36):
            cases.append(
                {
                    "expr": concrete(expr, "1m", "claude"),
                    "eval_time": f"{minute}m",
                    "exp_samples": [
                        {
                            "labels": '{service="claude"}'
                            if "by (service)" in expr
                            else '{probe="chat"}',
                            "value": value,
                        }
                    ],
                }
            )
    test_file = tmp_path / "ttft.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(path) for path in sorted(RULES.glob("*.yml"))],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": cases}],
            }
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
