"""Snapshots through the pipeline: metrics, staleness, the incident log, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from outagewatch.clock import FakeClock
from outagewatch.config import ConfigError, load_config, parse_config
from outagewatch.incidents import IncidentLog
from outagewatch.lenses.registry import CATALOGUE, build_sources
from outagewatch.metrics import StateCollector
from outagewatch.observations import COMPONENT_STATUSES, StatusIncident, StatusSnapshot
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from tests.scrape import Scrape, scrape

T0 = 1_786_000_000.0


def snap(
    time: float = T0,
    page: str = "main",
    components: dict[str, str] | None = None,
    incidents: tuple[StatusIncident, ...] = (),
    indicator: str = "none",
    maintenance: bool = False,
) -> StatusSnapshot:
    return StatusSnapshot(
        service="claude",
        page=page,
        kind="statuspage",
        time=time,
        indicator=indicator,
        components=components if components is not None else {"claude.ai": "operational"},
        incidents=incidents,
        maintenance_active=maintenance,
    )


def incident(
    incident_id: str = "inc1", impact: str = "minor", start: float = T0 - 300
) -> StatusIncident:
    return StatusIncident(incident_id, "Elevated errors", impact, start, start + 60)


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(FakeClock(T0))


@pytest.fixture
def registry(pipeline: Pipeline) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(StatusQuery(pipeline.state), "0", "test", "3"))
    return registry


def value(registry: CollectorRegistry | Scrape, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_component_is_a_state_set_over_the_five_statuses(
    pipeline: Pipeline, registry: CollectorRegistry
) -> None:
    pipeline.ingest([snap(components={"claude.ai": "major_outage"})])
    got = {
        status: value(
            registry,
            "outagewatch_status_component",
            service="claude",
            component="claude.ai",
            status=status,
        )
        for status in COMPONENT_STATUSES
    }
    assert got == {s: float(s == "major_outage") for s in COMPONENT_STATUSES}


def test_level_counts_start_and_maintenance(
    pipeline: Pipeline, registry: CollectorRegistry
) -> None:
    pipeline.ingest(
        [
            snap(
                incidents=(incident("a", "minor", T0 - 600), incident("b", "major", T0 - 100)),
                maintenance=True,
            )
        ]
    )
    assert value(registry, "outagewatch_status_level", service="claude") == 2
    counts = {
        impact: value(
            registry, "outagewatch_status_open_incidents", service="claude", impact=impact
        )
        for impact in ("none", "minor", "major", "critical")
    }
    assert counts == {"none": 0, "minor": 1, "major": 1, "critical": 0}
    assert (
        value(registry, "outagewatch_status_incident_start_timestamp_seconds", service="claude")
        == T0 - 600
    )
    assert value(registry, "outagewatch_status_maintenance_active", service="claude") == 1
    assert (
        value(registry, "outagewatch_status_last_success_timestamp_seconds", service="claude") == T0
    )


def test_quiet_page_has_no_incident_start(pipeline: Pipeline, registry: CollectorRegistry) -> None:
    pipeline.ingest([snap()])
    assert value(registry, "outagewatch_status_level", service="claude") == 0
    assert (
        value(registry, "outagewatch_status_incident_start_timestamp_seconds", service="claude")
        is None
    )


async def test_failed_fetch_keeps_the_last_reading_and_its_age(
    pipeline: Pipeline, registry: CollectorRegistry
) -> None:
    pipeline.record_run(
        "claude/status/main", "statuspage", 0.1, [snap(components={"claude.ai": "partial_outage"})]
    )
    pipeline.record_run("claude/status/main", "statuspage", 0.1, error_reason="challenge")
    labels = {"service": "claude", "component": "claude.ai", "status": "partial_outage"}
    assert value(registry, "outagewatch_status_component", **labels) == 1
    assert (
        value(registry, "outagewatch_status_last_success_timestamp_seconds", service="claude") == T0
    )
    assert (
        value(
            await scrape(pipeline.state),  # per-source families: the served page renders them
            "outagewatch_source_failures_total",
            source="claude/status/main",
            kind="statuspage",
            reason="challenge",
        )
        == 1
    )


def test_two_pages_of_one_service_combine(pipeline: Pipeline, registry: CollectorRegistry) -> None:
    pipeline.ingest(
        [
            snap(time=T0 - 120, page="cloud", components={"Vertex Gemini API": "operational"}),
            snap(
                page="app",
                components={"Gemini": "major_outage"},
                incidents=(incident("g1", "critical"),),
            ),
        ]
    )
    assert value(registry, "outagewatch_status_level", service="claude") == 3
    # The oldest page sets the age: one stale page makes the service's status stale.
    assert (
        value(registry, "outagewatch_status_last_success_timestamp_seconds", service="claude")
        == T0 - 120
    )
    for component in ("Vertex Gemini API", "Gemini"):
        labels = {"service": "claude", "component": component, "status": "operational"}
        assert value(registry, "outagewatch_status_component", **labels) is not None


def test_removed_page_leaves_metrics_on_reload(
    pipeline: Pipeline, registry: CollectorRegistry
) -> None:
    pipeline.ingest([snap()])
    pipeline.retain({"claude/status/main"}, set())
    assert value(registry, "outagewatch_status_level", service="claude") == 0
    pipeline.retain(set(), set())
    assert value(registry, "outagewatch_status_level", service="claude") is None


def test_every_status_metric_is_catalogued(pipeline: Pipeline, registry: CollectorRegistry) -> None:
    pipeline.ingest([snap(incidents=(incident(),), maintenance=True)])
    names = {m.name for m in registry.collect() if m.name.startswith("outagewatch_status")}
    assert names == {n for n in CATALOGUE if n.startswith("outagewatch_status")}


def test_incident_log_records_open_and_resolve_when_it_leaves(pipeline: Pipeline) -> None:
    pipeline.ingest([snap(time=T0, incidents=(incident("a", "minor"),))])
    pipeline.ingest([snap(time=T0 + 60, incidents=(incident("a", "major"),))])
    record = pipeline.state.incidents.get("claude", "main", "a")
    assert record is not None
    assert (record.first_seen, record.impact, record.resolved) == (T0, "major", None)
    assert (record.start, record.created) == (T0 - 300, T0 - 240)
    pipeline.ingest([snap(time=T0 + 120)])
    assert record.resolved == T0 + 120


def test_incident_marked_resolved_keeps_the_pages_resolve_time(pipeline: Pipeline) -> None:
    pipeline.ingest([snap(incidents=(incident("a"),))])
    closed = StatusIncident(
        "a", "Elevated errors", "minor", T0 - 300, T0 - 240, open=False, resolved=T0 + 30
    )
    pipeline.ingest([snap(time=T0 + 60, incidents=(closed,))])
    record = pipeline.state.incidents.get("claude", "main", "a")
    assert record is not None and record.resolved == T0 + 30


def test_incidents_never_seen_open_are_not_logged(pipeline: Pipeline) -> None:
    closed = StatusIncident(
        "old", "Long ago", "major", T0 - 9000, T0 - 9000, open=False, resolved=T0 - 8000
    )
    pipeline.ingest([snap(incidents=(closed,))])
    assert len(pipeline.state.incidents) == 0


def test_other_pages_do_not_resolve_each_others_incidents(pipeline: Pipeline) -> None:
    pipeline.ingest([snap(page="cloud", incidents=(incident("a"),))])
    pipeline.ingest([snap(page="app")])
    record = pipeline.state.incidents.get("claude", "cloud", "a")
    assert record is not None and record.resolved is None


def test_incident_log_snapshot_survives_json_and_load() -> None:
    log = IncidentLog()
    log.observe(snap(incidents=(incident("a"), incident("b", "critical"))))
    log.observe(snap(time=T0 + 60, incidents=(incident("b", "critical"),)))
    rows = json.loads(json.dumps(log.snapshot()))
    restored = IncidentLog()
    restored.load(rows)
    assert restored.snapshot() == log.snapshot()
    # After a restart, an incident still open is not opened twice.
    opened, _ = restored.observe(snap(time=T0 + 120, incidents=(incident("b", "critical"),)))
    assert opened == []


def test_incident_log_load_names_the_bad_row() -> None:
    log = IncidentLog()
    log.observe(snap(incidents=(incident("a"),)))
    rows = log.snapshot()
    with pytest.raises(ValueError, match="incident row 2: first_seen"):
        log.load([rows[0], {**rows[0], "first_seen": "yesterday"}])
    assert len(log) == 1  # a failed load loses nothing


def test_incident_log_drops_oldest_resolved_past_its_limit() -> None:
    log = IncidentLog(limit=2)
    for n in range(3):
        log.observe(snap(time=T0 + n, incidents=(incident(f"i{n}"),)))
    log.observe(snap(time=T0 + 10, incidents=(incident("i3"),)))
    assert [r.id for r in log.records()] == ["i2", "i3"]


def test_status_pages_config_builds_one_source_per_page() -> None:
    config = parse_config(
        {
            "services": {
                "gemini": {
                    "status_pages": {
                        "cloud": {
                            "kind": "google",
                            "url": "https://status.cloud.google.com/incidents.json",
                            "products": ["Vertex Gemini API"],
                        },
                        "app": {
                            "kind": "google",
                            "url": "https://www.google.com/appsstatus/dashboard/incidents.json",
                            "products": ["Gemini"],
                            "enabled": False,
                        },
                    }
                }
            }
        }
    )
    sources = build_sources(config)
    assert [(s.key, s.kind, s.interval) for s in sources] == [
        ("gemini/status/cloud", "google", 60.0)
    ]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        (
            {"kind": "statuspage"},
            "services -> s -> status_pages -> p -> url: required key is missing",
        ),
        (
            {"kind": "google", "url": "https://x/incidents.json", "products": []},
            "services -> s -> status_pages -> p -> products: List should have at least 1 item",
        ),
        (
            {"kind": "incidentio", "url": "https://x", "interval": "10s", "timeout": "20s"},
            "services -> s -> status_pages -> p: timeout (20s) must not exceed interval (10s)",
        ),
        (
            {"kind": "statuspage", "url": "https://x", "componets": ["a"]},
            "services -> s -> status_pages -> p -> componets: unknown key",
        ),
    ],
)
def test_bad_status_page_config_names_its_key(page: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"services": {"s": {"status_pages": {"p": page}}}})
    assert message in caught.value.errors[0]


def test_shipped_config_reads_the_real_pages() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "deploy/config/outagewatch.yml")
    pages = {
        (service, name): (page.kind, page.url)
        for service, cfg in config.services.items()
        for name, page in cfg.status_pages.items()
    }
    assert pages[("claude", "main")] == ("statuspage", "https://status.claude.com")
    assert pages[("chatgpt", "main")] == ("incidentio", "https://status.openai.com")
    assert pages[("gemini", "cloud")] == (
        "google",
        "https://status.cloud.google.com/incidents.json",
    )
    assert pages[("gemini", "app")] == (
        "google",
        "https://www.google.com/appsstatus/dashboard/incidents.json",
    )
