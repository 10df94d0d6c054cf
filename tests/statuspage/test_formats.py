"""The pure parsers, on the shipped captures and crafted variants of them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from outagewatch.lenses.statuspage.formats import (
    PageReading,
    parse_google,
    parse_incidentio_native,
    parse_statuspage,
    parse_time,
)
from outagewatch.observations import StatusSnapshot
from tests.statuspage.conftest import (
    claude_summary,
    fixture_json,
    google_incident,
    incidentio_native,
    incidentio_summary,
    open_incident,
    summary_fixture,
)


def snapshot(reading: PageReading) -> StatusSnapshot:
    return StatusSnapshot(
        service="svc",
        page="main",
        kind="statuspage",
        time=0.0,
        indicator=reading.indicator,
        components=reading.components,
        incidents=reading.incidents,
        maintenance_active=reading.maintenance_active,
    )


def test_real_summary_reads_chosen_components_by_id_and_name() -> None:
    reading = parse_statuspage(summary_fixture(), ["2htqrtyxmmtr", "baghdad, iraq - (bgw)"])
    # Keyed by the configured selector; the page's current name rides along.
    assert reading.components == {
        "2htqrtyxmmtr": "partial_outage",
        "baghdad, iraq - (bgw)": "under_maintenance",
    }
    assert reading.component_names == {
        "2htqrtyxmmtr": "Arica, Chile - (ARI)",
        "baghdad, iraq - (bgw)": "Baghdad, Iraq - (BGW)",
    }
    assert reading.indicator == "minor"
    assert reading.incidents == ()
    # Three maintenances are only scheduled: none is under way.
    assert reading.maintenance_active is False
    assert snapshot(reading).level == 1


def test_group_container_is_never_a_component() -> None:
    reading = parse_statuspage(summary_fixture(), ["Africa", "00gpj4s37mz4"])
    assert reading.components == {}
    assert reading.missing_components == ("Africa", "00gpj4s37mz4")


def test_unconfigured_components_are_ignored() -> None:
    assert parse_statuspage(summary_fixture(), []).components == {}


def test_indicator_none_with_an_open_minor_incident_is_level_1() -> None:
    doc = claude_summary(indicator="none", incidents=[open_incident(impact="minor")])
    reading = parse_statuspage(doc, ["claude.ai"])
    assert reading.indicator == "none"
    snap = snapshot(reading)
    assert snap.level == 1
    [incident] = snap.open_incidents
    assert incident.id == "3wbkwvf5ypbk"
    assert incident.name == "Web Analytics Configuration issues"
    assert incident.start == parse_time("2026-08-05T15:09:59.165Z")
    assert incident.created == parse_time("2026-08-05T15:09:59.177Z")


def test_real_resolved_incidents_are_not_open() -> None:
    incidents = fixture_json("statuspage-incidents-cloudflare-2026-08-07.json")["incidents"]
    reading = parse_statuspage(claude_summary(incidents=incidents), [])
    assert [i.id for i in reading.incidents] == ["3wbkwvf5ypbk", "kf6qktrf2gc1", "3n74c5yh817r"]
    assert all(not i.open for i in reading.incidents)
    assert reading.incidents[0].resolved == parse_time("2026-08-05T17:12:09.871Z")
    assert snapshot(reading).level == 0


def test_maintenance_in_progress_is_apart_from_the_level() -> None:
    doc = summary_fixture()
    doc["scheduled_maintenances"][0]["status"] = "in_progress"
    doc["status"]["indicator"] = "maintenance"
    reading = parse_statuspage(doc, [])
    assert reading.maintenance_active is True
    assert snapshot(reading).level == 0


@pytest.mark.parametrize("incidents", [None, "absent", []])
def test_incidentio_compatible_summary_without_incidents(incidents: object) -> None:
    reading = parse_statuspage(incidentio_summary(incidents), ["chat completions", "LOGIN"])
    assert reading.components == {
        "chat completions": "operational",
        "LOGIN": "degraded_performance",
    }
    assert reading.incidents == ()
    assert reading.maintenance_active is False


def test_incidentio_native_summary_maps_full_outage_and_skips_groups() -> None:
    reading = parse_incidentio_native(
        incidentio_native(), ["Chat Completions", "Login", "01JMXBRMFE6N2NNT7DG6XZQ6PZ"]
    )
    assert reading.components == {"Chat Completions": "major_outage", "Login": "operational"}
    assert reading.missing_components == ("01JMXBRMFE6N2NNT7DG6XZQ6PZ",)
    [incident] = reading.incidents
    assert (incident.id, incident.impact, incident.open) == (
        "01K1ZQ0W6AS3N2B9FJ6YQ4X1TM",
        "critical",
        True,
    )
    assert incident.start == parse_time("2026-08-07T01:00:00.000Z")
    assert reading.indicator == "critical"


def test_real_google_incidents_are_all_closed() -> None:
    document = fixture_json("gcp-incidents-2026-07.json")
    reading = parse_google(document, ["VMWare engine", "Media CDN"])
    assert {i.id for i in reading.incidents} == {
        "3BvH3LVGcupoYqV6F4Nw",
        "T8gmtofFSTGT5tbhyciF",
        "5fGQt4VbkDnr3Yp8PXPr",
    }
    assert not any(i.open for i in reading.incidents)
    assert reading.components == {"VMWare engine": "operational", "Media CDN": "operational"}
    assert reading.indicator == "none"


def test_google_filters_by_product_title_or_service_name() -> None:
    document = fixture_json("gcp-incidents-2026-07.json")
    assert parse_google(document, ["Vertex Gemini API"]).incidents == ()
    # "Multiple Products" is a service name; two incidents carry it.
    assert len(parse_google(document, ["multiple products"]).incidents) == 2


@pytest.mark.parametrize("end", ["", None, "absent"])
def test_google_incident_is_open_while_end_is_empty_null_or_missing(end: object) -> None:
    document = [google_incident("abc", "Vertex Gemini API", end=end, impact="SERVICE_DISRUPTION")]
    reading = parse_google(document, ["Vertex Gemini API"])
    [incident] = reading.incidents
    assert incident.open
    assert incident.impact == "major"
    assert reading.components == {"Vertex Gemini API": "partial_outage"}
    assert snapshot(reading).level == 2


def test_google_closed_incident_carries_its_end() -> None:
    document = [google_incident("abc", "Gemini", end="2026-07-15T03:40:00+00:00")]
    [incident] = parse_google(document, ["Gemini"]).incidents
    assert not incident.open
    assert incident.resolved == parse_time("2026-07-15T03:40:00+00:00")


def test_google_outage_maps_to_major_outage_and_critical() -> None:
    reading = parse_google([google_incident("abc", "Gemini")], ["Gemini", "Vertex Gemini API"])
    assert reading.components == {"Gemini": "major_outage", "Vertex Gemini API": "operational"}
    assert reading.indicator == "critical"


@pytest.mark.parametrize(
    ("parser", "document"),
    [
        (parse_statuspage, [1, 2]),
        (parse_statuspage, {"page": {}}),
        (parse_statuspage, {"components": [], "incidents": "many"}),
        (parse_incidentio_native, {"components": []}),
        (parse_google, {"incidents": []}),
    ],
)
def test_wrong_shapes_are_rejected(parser: object, document: object) -> None:
    with pytest.raises(ValueError):
        parser(document, [])  # type: ignore[operator]


def test_times_without_a_zone_or_garbled_are_absent() -> None:
    assert parse_time("2026-08-05T15:09:59") is None
    assert parse_time("yesterday") is None
    assert parse_time(None) is None
    expected = datetime(2026, 8, 5, 15, 9, 59, 165000, tzinfo=UTC).timestamp()
    assert parse_time("2026-08-05T15:09:59.165Z") == expected
    assert parse_time("2026-08-05T15:09:59.165+00:00") == expected
