"""The official status page lens (`services -> <name> -> status_pages`).

Sources: one per page (``source.py``), reading Atlassian Statuspage,
incident.io or Google's incidents.json (``formats.py``). State: the last good
reading of each page, kept while fetches fail. Incidents opened and resolved go
to the shared incident log (detection leads are measured against them).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.clock import iso_time, when_text
from outagewatch.config_types import GooglePage, IncidentIoPage, StatusPageConfig, StatuspagePage
from outagewatch.detect.disruption import PageEvidence, Reading
from outagewatch.keys import status_source_key
from outagewatch.lenses.base import (
    Evidence,
    EvidenceContext,
    Folding,
    Lens,
    PageContext,
    Placed,
    RunRecord,
)
from outagewatch.lenses.statuspage.source import StatusPageSource
from outagewatch.observations import (
    COMPONENT_STATUSES,
    IMPACT_LEVELS,
    StatusSnapshot,
    worst_status,
)

if TYPE_CHECKING:
    from outagewatch.config_types import Config, ServiceConfig
    from outagewatch.lenses.chat.budget import ChatBudget

OFFICIAL_LEVELS = ("operational", "minor", "major", "critical")
# Incident changes in one fetch logged one by one; more make one line with counts.
_INCIDENT_LINES_PER_FETCH = 5


@dataclass
class StatusPageState:
    """The last good reading of one official status page; kept while fetches fail."""

    kind: str
    last: StatusSnapshot


# Each page's last good reading, by (service, page).
StatusPagesState = dict[tuple[str, str], StatusPageState]


@dataclass(frozen=True)
class FetchView:
    """One enabled official page's fetching: failing (since when, why) or not."""

    page: str
    failing: bool
    failing_since: float | None
    error: str | None
    last_success: float | None

    def json(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "failing": self.failing,
            "failing_since": iso_time(self.failing_since),
            "error": self.error,
            "last_success": iso_time(self.last_success),
        }


@dataclass(frozen=True)
class PageView:
    """What one official page says now: its indicator, components and open incidents."""

    page: str
    reading: StatusSnapshot

    def json(self) -> dict[str, Any]:
        snapshot = self.reading
        return {
            "page": self.page,
            "indicator": snapshot.indicator,
            "time": iso_time(snapshot.time),
            "components": dict(sorted(snapshot.components.items())),
            "open_incidents": [
                {"name": i.name, "impact": i.impact, "start": iso_time(i.start)}
                for i in snapshot.open_incidents
            ],
        }


@dataclass(frozen=True)
class OfficialView:
    """A service's official status: the worst level over its pages, each page, each fetch."""

    level: int | None  # None until a page was read
    fetches: tuple[FetchView, ...]
    pages: tuple[PageView, ...]

    def json(self) -> dict[str, Any]:
        level = self.level
        return {
            "level": level,
            "level_name": OFFICIAL_LEVELS[level] if level is not None else None,
            "fetch": [fetch.json() for fetch in self.fetches],
            "pages": [page.json() for page in self.pages],
        }


def page_fetches(
    runs: Mapping[str, RunRecord], service: str, cfg: ServiceConfig
) -> tuple[FetchView, ...]:
    """Each enabled official page's fetching, from the framework's run records."""
    out = []
    for name, page in sorted(cfg.status_pages.items()):
        if not page.enabled:
            continue
        run = runs.get(status_source_key(service, name))
        out.append(
            FetchView(
                page=name,
                failing=run is not None and run.failing_since is not None,
                failing_since=run.failing_since if run else None,
                error=run.last_error if run else None,
                last_success=run.last_success_time if run else None,
            )
        )
    return tuple(out)


def official(
    state: StatusPagesState, runs: Mapping[str, RunRecord], service: str, cfg: ServiceConfig
) -> OfficialView | None:
    """None only when no official page is configured: a failing fetch says so."""
    fetches = page_fetches(runs, service, cfg)
    pages = sorted((k[1], v.last) for k, v in state.items() if k[0] == service)
    if not pages and not fetches:
        return None
    level = max((snapshot.level for _, snapshot in pages), default=None)
    return OfficialView(level, fetches, tuple(PageView(page, reading) for page, reading in pages))


def official_html(official: dict[str, Any] | None) -> str:
    if official is None:
        return "<p>No official status page configured.</p>"
    failing = "".join(
        f"<p class=official-fetch><strong class=down>Fetch failing</strong> since "
        f"{escape(when_text(f['failing_since']))}: {escape(f['error'] or '')}</p>"
        for f in official["fetch"]
        if f["failing"]
    )
    if official["level_name"] is None:
        return failing or "<p class=official>Not read yet.</p>"
    incidents = [i for page in official["pages"] for i in page["open_incidents"]]
    text = f"<p class=official>Official level: <strong>{escape(official['level_name'])}</strong>"
    if incidents:
        names = "; ".join(f"{i['name']} ({i['impact']})" for i in incidents)
        text += f". Open incidents: {escape(names)}"
    return text + "</p>" + failing


class StatusPageLens(Lens[StatusPagesState]):
    name = "statuspage"
    config_models = (StatuspagePage, IncidentIoPage, GooglePage)
    kind_unions = (StatusPageConfig,)
    observations = (StatusSnapshot,)
    page_key = "official"
    card_position = 0

    def new_state(self) -> StatusPagesState:
        return {}

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for service, service_config in config.services.items():
            for name, page in service_config.status_pages.items():
                if page.enabled:
                    yield Placed(StatusPageSource(service, name, page), "owner")

    def apply(self, pipeline: Folding, state: StatusPagesState, snapshot: StatusSnapshot) -> None:
        state[(snapshot.service, snapshot.page)] = StatusPageState(snapshot.kind, snapshot)
        opened, resolved = pipeline.state.incidents.observe(snapshot)
        # A line per incident for the usual one or two; past that, one line per
        # fetch with counts, so a page listing thousands cannot flood the log.
        per_incident = len(opened) + len(resolved) <= _INCIDENT_LINES_PER_FETCH
        if not per_incident:
            pipeline.log.warning(
                "status_incidents_changed",
                service=snapshot.service,
                page=snapshot.page,
                opened=len(opened),
                resolved=len(resolved),
                open_dropped=snapshot.open_incidents_dropped,
            )
        for record in opened:
            if per_incident:
                pipeline.log.warning(
                    "status_incident_opened",
                    service=record.service,
                    page=record.page,
                    incident=record.id,
                    impact=record.impact,
                    title=record.name,
                )
            pipeline.state.history.event(
                snapshot.time,
                record.service,
                "incident_opened",
                f"official page: {record.impact} incident opened: {record.name}",
            )
        for record in resolved:
            if per_incident:
                pipeline.log.info(
                    "status_incident_resolved",
                    service=record.service,
                    page=record.page,
                    incident=record.id,
                )
            pipeline.state.history.event(
                snapshot.time,
                record.service,
                "incident_resolved",
                f"official page: incident resolved: {record.name}",
            )

    def retain(
        self, state: StatusPagesState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        for key in [k for k in state if status_source_key(*k) not in source_keys]:
            del state[key]

    def families(self, state: StatusPagesState) -> Iterable[Metric]:
        """Per service, over its pages' last good readings (see docs/status-pages.md)."""
        fams = Families(
            "outagewatch_status_component",
            "outagewatch_status_component_info",
            "outagewatch_status_open_incidents_dropped",
            "outagewatch_status_level",
            "outagewatch_status_open_incidents",
            "outagewatch_status_incident_start_timestamp_seconds",
            "outagewatch_status_maintenance_active",
            "outagewatch_status_last_success_timestamp_seconds",
        )
        services = sorted({service for service, _ in state})
        for service in services:
            readings = [page.last for (svc, _), page in sorted(state.items()) if svc == service]
            components: dict[str, list[str]] = {}
            names: dict[str, str] = {}
            for reading in readings:
                for component, status in reading.components.items():
                    components.setdefault(component, []).append(status)
                for component, name in reading.component_names.items():
                    names.setdefault(component, name)
            for component, statuses in components.items():
                current = worst_status(statuses)
                for status in COMPONENT_STATUSES:
                    fams.add(
                        "outagewatch_status_component",
                        [service, component, status],
                        int(status == current),
                    )
                if component in names:
                    fams.add(
                        "outagewatch_status_component_info",
                        [service, component, names[component]],
                        1,
                    )
            fams.add(
                "outagewatch_status_open_incidents_dropped",
                [service],
                sum(r.open_incidents_dropped for r in readings),
            )
            fams.add("outagewatch_status_level", [service], max(r.level for r in readings))
            open_incidents = [i for r in readings for i in r.open_incidents]
            for impact in IMPACT_LEVELS:
                count = sum(1 for i in open_incidents if i.impact == impact)
                fams.add("outagewatch_status_open_incidents", [service, impact], count)
            starts = [start for r in readings if (start := r.earliest_start) is not None]
            if starts:
                fams.add(
                    "outagewatch_status_incident_start_timestamp_seconds", [service], min(starts)
                )
            fams.add(
                "outagewatch_status_maintenance_active",
                [service],
                int(any(r.maintenance_active for r in readings)),
            )
            fams.add(
                "outagewatch_status_last_success_timestamp_seconds",
                [service],
                min(r.time for r in readings),
            )
        return fams

    def page(self, state: StatusPagesState, ctx: PageContext) -> dict[str, Any] | None:
        view = official(state, ctx.runs, ctx.service, ctx.service_config)
        return None if view is None else view.json()

    def card(self, fragment: dict[str, Any] | None) -> str:
        return f"<h3>Official status page</h3>{official_html(fragment)}"

    def evidence(
        self, state: StatusPagesState, ctx: EvidenceContext
    ) -> Generator[None, None, Evidence]:
        pages = []
        for name, page_cfg in ctx.service_config.status_pages.items():
            key = status_source_key(ctx.service, name)
            if key not in ctx.scheduled:
                continue
            page = state.get((ctx.service, name))
            run = ctx.runs.get(key)
            failing_since = run.failing_since if run is not None else None
            if page is None:
                reading = Reading(None, page_cfg.interval, ctx.started)
                pages.append(PageEvidence(name, 0, reading, failing_since))
            else:
                reading = Reading(page.last.time, page_cfg.interval, ctx.started)
                pages.append(PageEvidence(name, page.last.level, reading, failing_since))
        return Evidence(pages=tuple(pages))
        yield
