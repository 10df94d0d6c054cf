"""The Grafana dashboards: generated from code, and held to the conventions."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.dashboards import DASHBOARDS, committed, generator, panels, queries
from tests.deploy.test_prometheus_rules import ALERTS

BOARDS = committed()
EXPECTED_UIDS = {
    "overview.json": "outagewatch-overview",
    "service.json": "outagewatch-service",
    "health.json": "outagewatch-health",
}
PROVISIONING = DASHBOARDS.parent / "deploy" / "grafana" / "provisioning"


def test_committed_json_is_what_the_generator_writes() -> None:
    rendered = generator().render()
    assert set(rendered) == {path.name for path in DASHBOARDS.glob("*.json")}
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"dashboards/{name} drifted: run python dashboards/generate.py"
        )


def test_dashboards_keep_their_uids() -> None:
    assert {name: board["uid"] for name, board in BOARDS.items()} == EXPECTED_UIDS


def test_alert_dashboard_links_point_at_real_dashboards() -> None:
    uids = set(EXPECTED_UIDS.values())
    for rule in ALERTS:
        match = re.search(r"/d/([a-z-]+)", rule["annotations"]["dashboard_url"])
        assert match and match.group(1) in uids, rule["alert"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_reads_the_datasource_variable_and_has_a_unit(name: str) -> None:
    board = BOARDS[name]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels(board):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_rate_uses_the_rate_interval(name: str) -> None:
    for title, expr in queries(BOARDS[name]):
        windows = re.findall(r"\b(?:rate|increase|irate)\([^\[]*\[([^\]]+)\]", expr)
        assert all(window == "$__rate_interval" for window in windows), (title, expr)


def test_service_dashboard_has_a_service_variable_used_by_its_panels() -> None:
    board = BOARDS["service.json"]
    service = next(v for v in board["templating"]["list"] if v["name"] == "service")
    assert service["query"] == "label_values(outagewatch_probes_total, service)"
    lens_queries = [expr for _, expr in queries(board)]
    assert all('service="$service"' in expr for expr in lens_queries)


def test_panels_have_stable_unique_ids() -> None:
    for board in BOARDS.values():
        ids = [panel["id"] for panel in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))


def test_provisioning_points_grafana_at_prometheus_and_the_dashboards() -> None:
    datasources: dict[str, Any] = yaml.safe_load(
        (PROVISIONING / "datasources" / "outagewatch.yml").read_text()
    )
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    providers: dict[str, Any] = yaml.safe_load(
        (PROVISIONING / "dashboards" / "outagewatch.yml").read_text()
    )
    assert providers["providers"][0]["type"] == "file"
    assert providers["providers"][0]["options"]["path"]
