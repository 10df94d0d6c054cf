"""Pure parsers of official status pages: parsed JSON in, a ``PageReading`` out.

Three formats (see docs/status-pages.md): Atlassian Statuspage v2 summary (also
served, with differences, by incident.io), incident.io's native ``/proxy/<host>``
summary, and Google's ``incidents.json``. A document of the wrong shape raises
``ValueError``; a missing optional field never does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
# Caps on what one reading keeps, so a hostile or broken page costs bounded
# memory, log lines and /metrics and / size (see docs/status-pages.md).
MAX_OPEN_INCIDENTS = 50  # the most severe, then the most recent
MAX_CLOSED_INCIDENTS = 100  # the most recently resolved
MAX_COMPONENTS = 10_000  # components scanned for the configured ones; later ones ignored


@dataclass(frozen=True, slots=True)
class PageReading:
    """What one fetch of a page says, before it is stamped with service and time."""

    indicator: str
    components: dict[str, str]
    incidents: tuple[StatusIncident, ...]
    maintenance_active: bool
    missing_components: tuple[str, ...] = ()
    open_incidents_dropped: int = 0  # open incidents beyond MAX_OPEN_INCIDENTS
    component_names: dict[str, str] = field(default_factory=dict)  # selector -> name on the page


def parse_time(value: Any) -> float | None:
    """ISO 8601 (``2026-08-07T02:48:45.271Z``, ``+00:00``) to epoch seconds; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) > 64:
        return None  # no ISO 8601 time is this long
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            return None  # a time without a zone is not a moment
        return parsed.timestamp()
    except (ValueError, OverflowError):
        return None


def _kind(value: Any) -> str:
    """The JSON type of a value, for errors that name a wrong one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _text(item: Mapping[str, Any], key: str, where: str) -> str:
    """A string field: null and absent are empty, another type is a format error."""
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} is {_kind(value)}, not a string")
    return value


def _ident(item: Mapping[str, Any], key: str, where: str) -> str:
    """An id: a string, or an integer some pages use; empty when absent."""
    value = item.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(item, key, where)


def _status(item: Mapping[str, Any], key: str, where: str) -> str:
    text = _text(item, key, where).lower()
    return _STATUS_ALIASES.get(text, text)


def _impact(item: Mapping[str, Any], key: str, where: str) -> str:
    text = _text(item, key, where).lower()
    return text if text in IMPACT_LEVELS else "none"


def _list(document: Mapping[str, Any], key: str, where: str = "") -> list[Mapping[str, Any]]:
    """A list of objects under ``key``: null and absent both mean empty."""
    value = document.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{where}{key} is {_kind(value)}, not a list")
    return [item for item in value if isinstance(item, Mapping)]


def _object(document: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    """An object under ``key``: null and absent both mean empty."""
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}{key} is {_kind(value)}, not an object")
    return value


def cap_incidents(incidents: Iterable[StatusIncident]) -> tuple[tuple[StatusIncident, ...], int]:
    """Keep the most severe, then most recent, open incidents and the latest closed ones.

    Returns the kept incidents (open first) and how many open ones were dropped.
    """
    open_ones: list[StatusIncident] = []
    closed: list[StatusIncident] = []
    for incident in incidents:
        (open_ones if incident.open else closed).append(incident)

    def recent(incident: StatusIncident) -> float:
        return incident.start or incident.created or 0.0

    open_ones.sort(key=lambda i: (IMPACT_LEVELS[i.impact], recent(i)), reverse=True)
    closed.sort(key=lambda i: i.resolved or recent(i), reverse=True)
    kept = (*open_ones[:MAX_OPEN_INCIDENTS], *closed[:MAX_CLOSED_INCIDENTS])
    return kept, max(0, len(open_ones) - MAX_OPEN_INCIDENTS)


def _worst_impact(incidents: Iterable[StatusIncident]) -> str:
    """The indicator a page without one would show: its worst open impact."""
    worst = max((IMPACT_LEVELS[i.impact] for i in incidents if i.open), default=0)
    return next(impact for impact, level in IMPACT_LEVELS.items() if level == worst)


def _name(item: Mapping[str, Any], key: str, where: str) -> str:
    # Cut before splitting: a name may be megabytes of text.
    text = " ".join(_text(item, key, where)[: _NAME_LIMIT * 4].split())
    return text[:_NAME_LIMIT]


@dataclass(frozen=True, slots=True)
class Selection:
    """The configured components found on a page, keyed by their selector."""

    statuses: dict[str, str]  # selector -> status
    names: dict[str, str]  # selector -> the component's name on the page now
    missing: tuple[str, ...]  # selectors that matched nothing


def select_components(
    components: Iterable[tuple[str, str, str]], selectors: Sequence[str]
) -> Selection:
    """Pick (id, name, status) components by id or case-insensitive name.

    Keyed by the configured selector, never by the page's name, so a component
    the page renames keeps its series.
    """
    by_id: dict[str, tuple[str, str]] = {}
    by_name: dict[str, tuple[str, str]] = {}
    for component_id, name, status in components:
        by_id.setdefault(component_id, (name, status))
        by_name.setdefault(name.casefold(), (name, status))
    statuses: dict[str, str] = {}
    names: dict[str, str] = {}
    missing: list[str] = []
    for selector in selectors:
        found = by_id.get(selector) or by_name.get(selector.casefold())
        if found is None:
            missing.append(selector)
        else:
            names[selector], statuses[selector] = found
    return Selection(statuses, names, tuple(missing))


def _statuspage_incident(item: Mapping[str, Any], where: str) -> StatusIncident | None:
    incident_id = _ident(item, "id", where)
    if not incident_id:
        return None
    created = parse_time(item.get("created_at"))
    closed = _text(item, "status", where).lower() in _CLOSED_STATUSES
    return StatusIncident(
        id=incident_id,
        name=_name(item, "name", where),
        impact=_impact(item, "impact", where),
        start=parse_time(item.get("started_at")) or created,
        created=created,
        open=not closed,
        resolved=parse_time(item.get("resolved_at")) if closed else None,
    )


def _reading(
    indicator: str, selection: Selection, incidents: Iterable[StatusIncident], maintenance: bool
) -> PageReading:
    kept, dropped = cap_incidents(incidents)
    return PageReading(
        indicator,
        selection.statuses,
        kept,
        maintenance,
        selection.missing,
        open_incidents_dropped=dropped,
        component_names=selection.names,
    )


def parse_statuspage(document: Any, selectors: Sequence[str]) -> PageReading:
    """Statuspage v2 ``/api/v2/summary.json`` (Atlassian, or incident.io's compatible one).

    incident.io differences handled: ``incidents``/``scheduled_maintenances`` null
    or absent, no ``group``, no ``time_zone``. Group containers (``group: true``
    or a list of child ids) are never components.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("components"), list):
        raise ValueError("not a Statuspage summary: no components list")
    leaves = []
    for number, c in enumerate(_list(document, "components")[:MAX_COMPONENTS]):
        where = f"components[{number}]"
        if c.get("group") or isinstance(c.get("components"), list):
            continue
        leaves.append(
            (_ident(c, "id", where), _name(c, "name", where), _status(c, "status", where))
        )
    selection = select_components(leaves, selectors)
    indicator = _text(_object(document, "status"), "indicator", "status") or "none"
    if indicator not in IMPACT_LEVELS and indicator != "maintenance":
        indicator = "none"
    incidents = [
        incident
        for number, item in enumerate(_list(document, "incidents"))
        if (incident := _statuspage_incident(item, f"incidents[{number}]")) is not None
    ]
    maintenance = indicator == "maintenance" or any(
        _text(m, "status", f"scheduled_maintenances[{number}]").lower() in _ACTIVE_MAINTENANCE
        for number, m in enumerate(_list(document, "scheduled_maintenances"))
    )
    return _reading(indicator, selection, incidents, maintenance)


def parse_incidentio_native(document: Any, selectors: Sequence[str]) -> PageReading:
    """incident.io's native ``/proxy/<host>`` summary.

    ``{summary:{components[], structure{items[{group{...}}]}, affected_components[],
    ongoing_incidents[], scheduled_maintenances[]}}``; a component not listed as
    affected is operational. Groups live only in ``structure`` and are skipped.
    """
    summary = document.get("summary") if isinstance(document, Mapping) else None
    if not isinstance(summary, Mapping) or not isinstance(summary.get("components"), list):
        raise ValueError("not an incident.io summary: no summary.components list")
    structure = _object(summary, "structure", "summary.")
    groups = set()
    for number, item in enumerate(_list(structure, "items", "summary.structure.")):
        group = _object(item, "group", f"summary.structure.items[{number}].")
        if group:
            groups.add(_ident(group, "id", f"summary.structure.items[{number}].group"))
    affected: dict[str, list[str]] = {}
    for number, entry in enumerate(_list(summary, "affected_components", "summary.")):
        where = f"summary.affected_components[{number}]"
        component_id = _ident(entry, "component_id", where)
        affected.setdefault(component_id, []).append(_status(entry, "status", where))
    leaves = []
    for number, c in enumerate(_list(summary, "components", "summary.")[:MAX_COMPONENTS]):
        where = f"summary.components[{number}]"
        cid = _ident(c, "id", where)
        if cid not in groups:
            leaves.append((cid, _name(c, "name", where), worst_status(affected.get(cid, []))))
    selection = select_components(leaves, selectors)
    incidents = []
    for number, item in enumerate(_list(summary, "ongoing_incidents", "summary.")):
        where = f"summary.ongoing_incidents[{number}]"
        incident_id = _ident(item, "id", where)
        if not incident_id:
            continue
        created = parse_time(item.get("published_at")) or parse_time(item.get("created_at"))
        worst = _status(item, "current_worst_impact", where)
        incidents.append(
            StatusIncident(
                id=incident_id,
                name=_name(item, "name", where),
                impact=_STATUS_IMPACT.get(worst, "minor"),
                start=parse_time(item.get("started_at")) or created,
                created=created,
            )
        )
    maintenance = any(
        _text(m, "status", f"summary.scheduled_maintenances[{number}]").lower()
        in _ACTIVE_MAINTENANCE
        for number, m in enumerate(_list(summary, "scheduled_maintenances", "summary."))
    )
    return _reading(_worst_impact(incidents), selection, incidents, maintenance)


def _google_impact(item: Mapping[str, Any], where: str) -> str:
    impact = _GOOGLE_IMPACT.get(_text(item, "status_impact", where))
    return impact or _GOOGLE_SEVERITY.get(_text(item, "severity", where).lower(), "minor")


def _google_products(item: Mapping[str, Any], where: str) -> set[str]:
    names = {_text(item, "service_name", where).casefold()}
    for number, product in enumerate(_list(item, "affected_products", f"{where}.")):
        names.add(_text(product, "title", f"{where}.affected_products[{number}]").casefold())
        names.add(
            _text(product, "current_title", f"{where}.affected_products[{number}]").casefold()
        )
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
    for number, item in enumerate(document):
        if not isinstance(item, Mapping):
            continue
        where = f"[{number}]"
        matched = [wanted[name] for name in _google_products(item, where) if name in wanted]
        incident_id = _ident(item, "id", where)
        if not matched or not incident_id:
            continue
        impact = _google_impact(item, where)
        is_open = item.get("end") in (None, "")
        created = parse_time(item.get("created"))
        incidents.append(
            StatusIncident(
                id=incident_id,
                name=_name(item, "external_desc", where),
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
    selection = Selection(
        {product: worst_status(found) for product, found in statuses.items()},
        {product: product for product in products},
        (),
    )
    return _reading(_worst_impact(incidents), selection, incidents, False)
