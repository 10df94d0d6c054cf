"""Pure parsers of official status pages: parsed JSON in, a ``PageReading`` out.

Three formats (see docs/status-pages.md): Atlassian Statuspage v2 summary (also
served, with differences, by incident.io), incident.io's native ``/proxy/<host>``
summary, and Google's ``incidents.json``. A document of the wrong shape raises
``ValueError``; a missing optional field never does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from outagewatch.observations import IMPACT_LEVELS, StatusIncident, worst_status

# Incident statuses after which an incident is over.
_CLOSED_STATUSES = {"resolved", "postmortem", "completed"}
_ACTIVE_MAINTENANCE = {"in_progress", "verifying", "maintenance_in_progress"}
# Other vocabularies mapped onto Statuspage's component statuses.
_STATUS_ALIASES = {"full_outage": "major_outage", "degraded": "degraded_performance"}
# Statuspage derives its indicator from the worst component the same way.
_STATUS_IMPACT = {
    "operational": "none",
    "under_maintenance": "none",
    "degraded_performance": "minor",
    "partial_outage": "major",
    "major_outage": "critical",
}
_IMPACT_STATUS = {
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
}
_GOOGLE_IMPACT = {
    "SERVICE_INFORMATION": "minor",
    "SERVICE_DISRUPTION": "major",
    "SERVICE_OUTAGE": "critical",
}
_GOOGLE_SEVERITY = {"low": "minor", "medium": "major", "high": "critical"}
_NAME_LIMIT = 200  # incident names are free text; keep what the log stores small


@dataclass(frozen=True, slots=True)
class PageReading:
    """What one fetch of a page says, before it is stamped with service and time."""

    indicator: str
    components: dict[str, str]
    incidents: tuple[StatusIncident, ...]
    maintenance_active: bool
    missing_components: tuple[str, ...] = ()


def parse_time(value: Any) -> float | None:
    """ISO 8601 (``2026-08-07T02:48:45.271Z``, ``+00:00``) to epoch seconds; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None  # a time without a zone is not a moment
    return parsed.timestamp()


def _status(value: Any) -> str:
    text = str(value or "").lower()
    return _STATUS_ALIASES.get(text, text)


def _impact(value: Any) -> str:
    text = str(value or "none").lower()
    return text if text in IMPACT_LEVELS else "none"


def _list(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """A list of objects under ``key``: null and absent both mean empty."""
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return [item for item in value if isinstance(item, Mapping)]


def _worst_impact(incidents: Iterable[StatusIncident]) -> str:
    """The indicator a page without one would show: its worst open impact."""
    worst = max((IMPACT_LEVELS[i.impact] for i in incidents if i.open), default=0)
    return next(impact for impact, level in IMPACT_LEVELS.items() if level == worst)


def _name(value: Any) -> str:
    text = " ".join(str(value or "").split())
    return text[:_NAME_LIMIT]


def select_components(
    components: Iterable[tuple[str, str, str]], selectors: Sequence[str]
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Pick (id, name, status) components by id or case-insensitive name.

    Returns {page name: status} in selector order and the selectors that matched nothing.
    """
    by_id: dict[str, tuple[str, str]] = {}
    by_name: dict[str, tuple[str, str]] = {}
    for component_id, name, status in components:
        by_id.setdefault(component_id, (name, status))
        by_name.setdefault(name.casefold(), (name, status))
    chosen: dict[str, str] = {}
    missing: list[str] = []
    for selector in selectors:
        found = by_id.get(selector) or by_name.get(selector.casefold())
        if found is None:
            missing.append(selector)
        else:
            chosen[found[0]] = found[1]
    return chosen, tuple(missing)


def _statuspage_incident(item: Mapping[str, Any]) -> StatusIncident | None:
    incident_id = item.get("id")
    if not isinstance(incident_id, str) or not incident_id:
        return None
    created = parse_time(item.get("created_at"))
    closed = str(item.get("status", "")).lower() in _CLOSED_STATUSES
    return StatusIncident(
        id=incident_id,
        name=_name(item.get("name")),
        impact=_impact(item.get("impact")),
        start=parse_time(item.get("started_at")) or created,
        created=created,
        open=not closed,
        resolved=parse_time(item.get("resolved_at")) if closed else None,
    )


def parse_statuspage(document: Any, selectors: Sequence[str]) -> PageReading:
    """Statuspage v2 ``/api/v2/summary.json`` (Atlassian, or incident.io's compatible one).

    incident.io differences handled: ``incidents``/``scheduled_maintenances`` null
    or absent, no ``group``, no ``time_zone``. Group containers (``group: true``
    or a list of child ids) are never components.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("components"), list):
        raise ValueError("not a Statuspage summary: no components list")
    leaves = [
        (str(c.get("id", "")), _name(c.get("name")), _status(c.get("status")))
        for c in _list(document, "components")
        if not c.get("group") and not isinstance(c.get("components"), list)
    ]
    chosen, missing = select_components(leaves, selectors)
    status = document.get("status")
    indicator = str(status.get("indicator") or "none") if isinstance(status, Mapping) else "none"
    if indicator not in IMPACT_LEVELS and indicator != "maintenance":
        indicator = "none"
    incidents = tuple(
        incident
        for item in _list(document, "incidents")
        if (incident := _statuspage_incident(item)) is not None
    )
    maintenance = indicator == "maintenance" or any(
        str(m.get("status", "")).lower() in _ACTIVE_MAINTENANCE
        for m in _list(document, "scheduled_maintenances")
    )
    return PageReading(indicator, chosen, incidents, maintenance, missing)


def parse_incidentio_native(document: Any, selectors: Sequence[str]) -> PageReading:
    """incident.io's native ``/proxy/<host>`` summary.

    ``{summary:{components[], structure{items[{group{...}}]}, affected_components[],
    ongoing_incidents[], scheduled_maintenances[]}}``; a component not listed as
    affected is operational. Groups live only in ``structure`` and are skipped.
    """
    summary = document.get("summary") if isinstance(document, Mapping) else None
    if not isinstance(summary, Mapping) or not isinstance(summary.get("components"), list):
        raise ValueError("not an incident.io summary: no summary.components list")
    groups = {
        str(item["group"].get("id"))
        for item in _list(summary.get("structure") or {}, "items")
        if isinstance(item.get("group"), Mapping)
    }
    affected: dict[str, list[str]] = {}
    for entry in _list(summary, "affected_components"):
        component_id = str(entry.get("component_id", ""))
        affected.setdefault(component_id, []).append(_status(entry.get("status")))
    leaves = [
        (cid, _name(c.get("name")), worst_status(affected.get(cid, [])))
        for c in _list(summary, "components")
        if (cid := str(c.get("id", ""))) not in groups
    ]
    chosen, missing = select_components(leaves, selectors)
    incidents = []
    for item in _list(summary, "ongoing_incidents"):
        incident_id = item.get("id")
        if not isinstance(incident_id, str) or not incident_id:
            continue
        created = parse_time(item.get("published_at")) or parse_time(item.get("created_at"))
        incidents.append(
            StatusIncident(
                id=incident_id,
                name=_name(item.get("name")),
                impact=_STATUS_IMPACT.get(_status(item.get("current_worst_impact")), "minor"),
                start=parse_time(item.get("started_at")) or created,
                created=created,
            )
        )
    maintenance = any(
        str(m.get("status", "")).lower() in _ACTIVE_MAINTENANCE
        for m in _list(summary, "scheduled_maintenances")
    )
    return PageReading(_worst_impact(incidents), chosen, tuple(incidents), maintenance, missing)


def _google_impact(item: Mapping[str, Any]) -> str:
    impact = _GOOGLE_IMPACT.get(str(item.get("status_impact", "")))
    return impact or _GOOGLE_SEVERITY.get(str(item.get("severity", "")).lower(), "minor")


def _google_products(item: Mapping[str, Any]) -> set[str]:
    names = {str(item.get("service_name", "")).casefold()}
    for product in item.get("affected_products") or []:
        if isinstance(product, Mapping):
            names.add(str(product.get("title", "")).casefold())
            names.add(str(product.get("current_title", "")).casefold())
    names.discard("")
    return names


def parse_google(document: Any, products: Sequence[str]) -> PageReading:
    """Google Cloud / Workspace ``incidents.json``: a bare array of incidents.

    Only incidents naming a configured product (title or service name) count;
    each product becomes a component whose status is the worst open impact on
    it. An incident is open while ``end`` is missing, null or empty.
    """
    if not isinstance(document, list):
        raise ValueError("not a Google incidents list: the top level is not an array")
    wanted = {product.casefold(): product for product in products}
    statuses: dict[str, list[str]] = {product: [] for product in products}
    incidents = []
    for item in document:
        if not isinstance(item, Mapping):
            continue
        matched = [wanted[name] for name in _google_products(item) if name in wanted]
        incident_id = item.get("id")
        if not matched or not isinstance(incident_id, str) or not incident_id:
            continue
        impact = _google_impact(item)
        is_open = item.get("end") in (None, "")
        created = parse_time(item.get("created"))
        incidents.append(
            StatusIncident(
                id=incident_id,
                name=_name(item.get("external_desc")),
                impact=impact,
                start=parse_time(item.get("begin")) or created,
                created=created,
                open=is_open,
                resolved=None if is_open else parse_time(item.get("end")),
            )
        )
        if is_open:
            for product in matched:
                statuses[product].append(_IMPACT_STATUS[impact])
    components = {product: worst_status(found) for product, found in statuses.items()}
    return PageReading(_worst_impact(incidents), components, tuple(incidents), False)
