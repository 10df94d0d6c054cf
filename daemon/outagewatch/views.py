"""Typed read views of the pipeline's state: what the status page, its JSON and the
collectors read, so none of them reaches into ``State``.

``StatusQuery`` wraps the one ``State`` and answers with frozen dataclasses:
``document`` the whole status document (the page renders it, ``json()`` is the
body of ``/api/v1/status``), the other methods what the collectors export.
Each lens's fragment stays the lens's own view (``Lens.page``/``Lens.card``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outagewatch import __version__
from outagewatch.clock import iso_time, when_text
from outagewatch.config import ChatProbeBase, Config, ServiceConfig
from outagewatch.detect.disruption import REASON_LENS
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.replay import warmup
from outagewatch.detect.tracker import LEAD_OUTCOMES
from outagewatch.history import REPORT_BUCKET
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.appstore.state import RankPoint
from outagewatch.lenses.base import Lens, PageContext
from outagewatch.lenses.probe import ProbeLens, ProbeState
from outagewatch.lenses.reports import ReportsLens
from outagewatch.lenses.reports.baseline import HOUR, SLOTS_PER_HOUR, hour_of
from outagewatch.lenses.statuspage import FetchView, page_fetches
from outagewatch.observations import short_detail
from outagewatch.pipeline import SourceRunState, State

# Each disruption reason (detect/disruption.py) as a reader would put it.
REASON_TEXT = {
    # A spike reason without words of its own: what its detector watches, spiking.
    **{spec.reason: f"{spec.text} spiking" for spec in SIGNAL_TABLE.values()},
    "probes_failing": "most probes failing",
    "some_probes_failing": "some probes failing",
    "failure_ratio_spike": "probe failures spiking",
    "chat_overloaded": "chat API answering overloaded",
    "ttft_spike": "first tokens slow",
    "latency_spike": "answers slow",
    "report_spike": "user reports spiking",
    "official_minor": "official page: minor incident",
    "official_major": "official page: major incident",
    "rank_surge": "App Store rank surging (a warning of load)",
    "traffic_spike": "traffic surging",
    "traffic_drop": "traffic dropping",
    "no_successful_probe_yet": "no successful probe yet",
    "official_not_read_yet": "official page not read yet",
    "official_fetch_failing": "official page fetch failing",
    "readings_stale": "no fresh reading from probes or the official page",
    "vantage_unhealthy": "vantage unhealthy: this daemon's own network is failing",
}
# Signal label -> what its detector watches, in words.
SIGNAL_TEXT = {signal: spec.text for signal, spec in SIGNAL_TABLE.items()}
# Why a service is unknown (detect/disruption.py UNKNOWN_REASONS), in words.
UNKNOWN_REASON_TEXT = {
    "no_successful_probe_yet": "no successful probe yet",
    "official_not_read_yet": "official page not read yet",
    "official_fetch_failing": "official page fetch failing",
    "readings_stale": "readings stale",
    "vantage_unhealthy": "vantage unhealthy",
}
# Worst first: what needs a look comes before what is fine.
STATE_ORDER = ("disrupted", "degraded", "unknown", "ok")
RECENT_EVENTS = 30
PROBE_EVENT_KINDS = frozenset({"probe_up", "probe_down"})
# An unknown reason shared by more services than this is counted, not listed.
SUMMARY_NAMES = 3

# (time, value): one point of a chart.
Point = tuple[float, float]


@dataclass(frozen=True)
class LeadView:
    """How the service's latest flagged official incident compared with our flag."""

    outcome: str
    seconds: float | None
    incident: str
    incident_start: str | None


@dataclass(frozen=True)
class DisruptionView:
    state: str
    since: str | None
    reasons: tuple[str, ...]
    reason_texts: tuple[str, ...]
    lead: LeadView | None


@dataclass(frozen=True)
class DetectorView:
    """One spike detector's warm-up: no alert from it until it has seen enough history."""

    signal: str
    warm: bool
    points: int
    history_seconds: int
    needs_points: int
    needs_seconds: int


@dataclass(frozen=True)
class DetectorsView:
    warming_up: tuple[str, ...]
    signals: tuple[DetectorView, ...]


@dataclass(frozen=True)
class ChartsView:
    since: float
    probe_success_percent: tuple[Point, ...]
    ttft_seconds: Mapping[str, tuple[Point, ...]]
    reports_per_5m: tuple[Point, ...]
    reports_counted_from: str | None
    baseline_per_5m: tuple[Point, ...]
    appstore_position: Mapping[str, tuple[Point, ...]]


@dataclass(frozen=True)
class FailingSource:
    """A run that observed nothing (a status page unreadable, a key file missing), and why."""

    source: str
    kind: str
    error: str


@dataclass(frozen=True)
class LensFragment:
    """One lens's part of a service's status, under ``key`` in the JSON: the lens made
    it (``Lens.page``) and renders it (``Lens.card``)."""

    key: str
    lens: Lens[Any]
    fragment: Any


@dataclass(frozen=True)
class ServiceStatus:
    service: str
    title: str
    disruption: DisruptionView
    detectors: DetectorsView
    lenses: tuple[LensFragment, ...]
    charts: ChartsView
    failing_sources: tuple[FailingSource, ...]


@dataclass(frozen=True)
class UnknownGroup:
    """Unknown services that share a reason."""

    reason: str | None
    text: str
    services: tuple[str, ...]
    titles: tuple[str, ...]


@dataclass(frozen=True)
class Summary:
    services: int
    states: Mapping[str, int]
    worst: str | None
    unknown_reasons: tuple[UnknownGroup, ...]
    text: str
    # (state, words) per state present, worst first: the page's parts of ``text``.
    parts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Event:
    time: str
    service: str
    kind: str
    text: str


@dataclass(frozen=True)
class StatusDocument:
    """Everything the status page shows; ``json()`` is the body of /api/v1/status."""

    version: str
    time: str
    services: tuple[ServiceStatus, ...]
    summary: Summary
    events: tuple[Event, ...]

    def json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "time": self.time,
            "services": [_service_json(s) for s in self.services],
            "summary": _summary_json(self.summary),
            "events": [
                {"time": e.time, "service": e.service, "kind": e.kind, "text": e.text}
                for e in self.events
            ],
        }


def _points(points: Sequence[Point]) -> list[list[float]]:
    return [list(p) for p in points]


def _service_json(s: ServiceStatus) -> dict[str, Any]:
    d, lead = s.disruption, s.disruption.lead
    out: dict[str, Any] = {
        "service": s.service,
        "title": s.title,
        "disruption": {
            "state": d.state,
            "since": d.since,
            "reasons": list(d.reasons),
            "reason_texts": list(d.reason_texts),
            "lead": None
            if lead is None
            else {
                "outcome": lead.outcome,
                "seconds": lead.seconds,
                "incident": lead.incident,
                "incident_start": lead.incident_start,
            },
        },
        "detectors": {
            "warming_up": list(s.detectors.warming_up),
            "signals": {
                w.signal: {
                    "warm": w.warm,
                    "points": w.points,
                    "history_seconds": w.history_seconds,
                    "needs_points": w.needs_points,
                    "needs_seconds": w.needs_seconds,
                }
                for w in s.detectors.signals
            },
        },
    }
    for part in s.lenses:
        out[part.key] = part.fragment
    c = s.charts
    out["charts"] = {
        "since": c.since,
        "probe_success_percent": _points(c.probe_success_percent),
        "ttft_seconds": {probe: _points(p) for probe, p in c.ttft_seconds.items()},
        "reports_per_5m": _points(c.reports_per_5m),
        "reports_counted_from": c.reports_counted_from,
        "baseline_per_5m": _points(c.baseline_per_5m),
        "appstore_position": {country: _points(p) for country, p in c.appstore_position.items()},
    }
    out["failing_sources"] = [
        {"source": f.source, "kind": f.kind, "error": f.error} for f in s.failing_sources
    ]
    return out


def _summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "services": summary.services,
        "states": dict(summary.states),
        "worst": summary.worst,
        "unknown_reasons": [
            {
                "reason": g.reason,
                "text": g.text,
                "services": list(g.services),
                "titles": list(g.titles),
            }
            for g in summary.unknown_reasons
        ],
        "text": summary.text,
    }


# -- the collectors' views ---------------------------------------------------


@dataclass(frozen=True)
class ReloadView:
    ok: bool
    success_time: float | None


@dataclass(frozen=True)
class HistogramView:
    cumulative: tuple[tuple[str, float], ...]  # (le, count so far) per bucket
    sum: float


@dataclass(frozen=True)
class SpikeView:
    service: str
    signal: str
    score: float
    active: bool
    baseline: float
    spikes_total: int


@dataclass(frozen=True)
class DisruptionReading:
    """One judged service as the detection collector exports it."""

    service: str
    state: str
    reasons: frozenset[str]
    since: float
    lead_seconds: float | None
    incidents: tuple[tuple[str, int], ...]  # (lead outcome, incidents so far) per outcome


class StatusQuery:
    """The read side of the pipeline: typed views built from ``State`` on demand."""

    def __init__(self, state: State) -> None:
        self._state = state

    def reload(self) -> ReloadView:
        return ReloadView(self._state.config_reload_ok, self._state.config_reload_time)

    def lateness(self) -> HistogramView:
        hist = self._state.scheduler_lateness
        return HistogramView(tuple(hist.cumulative()), hist.sum)

    def probe_records(self) -> Mapping[tuple[str, str], ProbeState]:
        """Each probe's live record by (service, probe), read-only: /metrics caches a
        probe's lines while its record and run count stay the same, and snapshots the
        keys itself (a list of pairs is 10,000 tuples a scrape for the collector)."""
        return self._state.lenses.of(ProbeLens).probes

    def run_records(self) -> Mapping[str, SourceRunState]:
        """Each scheduled source's live run record by key, read-only."""
        return self._state.runs

    def lens_states(self) -> Iterator[tuple[Lens[Any], Any]]:
        """Each lens with its state, in registry order: the lenses render their families."""
        return iter(self._state.lenses)

    def spikes(self) -> list[SpikeView]:
        signals = self._state.signals
        return [
            SpikeView(
                service,
                signal,
                status.verdict.score,
                status.verdict.active,
                status.verdict.baseline,
                signals.spikes_total[(service, signal)],
            )
            for (service, signal), status in sorted(signals.status.items())
        ]

    def disruptions(self) -> list[DisruptionReading]:
        tracker = self._state.disruption
        out = []
        for service, current in sorted(tracker.status.items()):
            lead = tracker.last_lead(service)
            out.append(
                DisruptionReading(
                    service,
                    current.state,
                    current.reasons,
                    current.since,
                    None if lead is None else lead.seconds,
                    tuple(
                        (outcome, tracker.lead_outcomes[(service, outcome)])
                        for outcome in LEAD_OUTCOMES
                    ),
                )
            )
        return out

    def document(self, config: Config, now: float, base: str = "") -> StatusDocument:
        """Everything the status page shows; links start with ``base``."""
        state = self._state
        # Sources whose last run observed nothing, by service (the key's first part).
        failing: dict[str, list[FailingSource]] = {}
        for source, run in sorted(state.runs.items()):
            if run.last_error is not None:
                entry = FailingSource(source, run.kind, short_detail(run.last_error))
                failing.setdefault(source.split("/", 1)[0], []).append(entry)
        services = []
        for key, cfg in config.services.items():
            ctx = PageContext(key, cfg, config, state.signals, state.runs, now, base)
            fragments = tuple(
                LensFragment(lens.page_key, lens, lens.page(lens_state, ctx))
                for lens, lens_state in state.lenses
                if lens.page_key is not None
            )
            services.append(
                ServiceStatus(
                    key,
                    cfg.title(key),
                    self._disruption(key, cfg),
                    self._detectors(key),
                    fragments,
                    self._charts(key, config, now),
                    tuple(failing.get(key, [])),
                )
            )
        events = [(e.time, e.service, e.kind, e.text) for e in state.history.events]
        for t in state.disruption.recent_events(RECENT_EVENTS):
            reasons = ", ".join(REASON_TEXT.get(r, r) for r in t.reasons)
            text = f"now {t.state} (was {t.previous})" + (f": {reasons}" if reasons else "")
            events.append((t.time, t.service, "state", text))
        events.sort(key=lambda e: e[0], reverse=True)
        return StatusDocument(
            __version__,
            iso_time(now),
            tuple(services),
            summary(services),
            tuple(
                Event(iso_time(time), service, kind, text)
                for time, service, kind, text in _bounded_events(events)
            ),
        )

    def _disruption(self, service: str, cfg: ServiceConfig) -> DisruptionView:
        tracker = self._state.disruption
        status = tracker.status.get(service)
        lead = tracker.last_lead(service)
        reasons = tuple(sorted(status.reasons)) if status else ()
        fetches = page_fetches(self._state.runs, service, cfg)
        return DisruptionView(
            status.state if status else "unknown",
            iso_time(status.since if status else None),
            reasons,
            tuple(_reason_text(r, fetches) for r in reasons),
            None
            if lead is None
            else LeadView(lead.outcome, lead.seconds, lead.incident, iso_time(lead.start)),
        )

    def _detectors(self, service: str) -> DetectorsView:
        """``reports`` is always listed: its detector exists from the first closed bucket."""
        signals = self._state.signals
        names = {signal for svc, signal in signals.detectors if svc == service} | {"reports"}
        entries = [
            warmup(signal, signals.detectors.get((service, signal)), signals.settings)
            for signal in sorted(names)
        ]
        return DetectorsView(
            tuple(w.signal for w in entries if not w.warm),
            tuple(
                DetectorView(
                    w.signal,
                    w.warm,
                    w.points,
                    round(w.seconds),
                    w.need_points,
                    round(w.need_seconds),
                )
                for w in entries
            ),
        )

    def _rank_series(self, service: str, since: float) -> dict[str, tuple[Point, ...]]:
        """Position per country in the service's first charted feed (depth + 1 when out)."""
        series: dict[str, list[RankPoint]] = {}
        chart = None
        history = self._state.lenses.of(AppStoreLens).history
        for owner, country, chart_name in history.series_keys():
            if owner != service or (chart is not None and chart_name != chart):
                continue
            chart = chart_name
            series[country] = [
                p for p in history.points((owner, country, chart_name)) if p.time >= since
            ]
        return {
            country: tuple((p.time, float(p.position)) for p in points)
            for country, points in series.items()
            if points
        }

    def _charts(self, service: str, config: Config, now: float) -> ChartsView:
        state = self._state
        since = now - state.history.window
        cfg = config.services[service]
        chat_probes = {k for k, p in cfg.probes.items() if isinstance(p, ChatProbeBase)}
        counts = self._report_counts(service, since, now)
        reports = state.lenses.of(ReportsLens)
        return ChartsView(
            since,
            tuple(state.history.success_percent(service, since)),
            {
                probe: tuple(points)
                for probe, points in state.history.ttft_points(service, since).items()
                if probe in chat_probes
            },
            tuple((t, float(c)) for t, c in counts),
            iso_time(state.disruption.started.get(service)),
            tuple((t, round(reports.baseline(service, t), 3)) for t, _ in counts),
            self._rank_series(service, since),
        )

    def _report_counts(
        self, service: str, since: float, now: float
    ) -> list[tuple[float, int | float]]:
        """Reports per 5 minutes for the chart, with no zeros where nobody was counting.

        The chart history holds only what this process received since it started
        watching. Before that, the stored (or imported) reports are known per hour,
        so those 5 minutes get their hour's average; before the stored history
        begins there is no point at all, not a zero.
        """
        state = self._state
        live = state.history.report_counts(service, since, now)
        watching = state.disruption.started.get(service)
        if watching is None:
            return list(live)
        counts = state.lenses.of(ReportsLens).services.get(service)
        hourly = counts.hourly if counts else {}
        known_from = state.lenses.of(ReportsLens).history_start
        first_live = int(watching // REPORT_BUCKET) * REPORT_BUCKET
        start_hour = hour_of(watching)
        # The start hour's reports before the start: its stored total less what was counted live.
        live_in_start_hour = sum(c for t, c in live if hour_of(t) == start_hour)
        before_start = max(hourly.get(start_hour, 0) - live_in_start_hour, 0)
        buckets_before = (first_live - start_hour * HOUR) / REPORT_BUCKET
        out: list[tuple[float, int | float]] = []
        for t, count in live:
            if t >= first_live:
                out.append((t, count))
            elif t + REPORT_BUCKET > known_from:
                hour = hour_of(t)
                if hour == start_hour:
                    out.append((t, round(before_start / buckets_before, 2)))
                else:
                    out.append((t, round(hourly.get(hour, 0) / SLOTS_PER_HOUR, 2)))
        return out


def _reason_text(reason: str, fetches: Sequence[FetchView]) -> str:
    text = REASON_TEXT.get(reason, reason)
    if reason == "official_fetch_failing":
        starts = [f.failing_since for f in fetches if f.failing_since is not None]
        if starts:
            text += f" since {when_text(iso_time(min(starts)))}"
    return text


def _bounded_events(
    events: list[tuple[float, str, str, str]],
) -> list[tuple[float, str, str, str]]:
    """Newest first: RECENT_EVENTS probe up/down events and RECENT_EVENTS of the rest.

    Bounded apart, so a flapping probe never pushes the state changes off the page.
    """
    noise = [e for e in events if e[2] in PROBE_EVENT_KINDS][:RECENT_EVENTS]
    news = [e for e in events if e[2] not in PROBE_EVENT_KINDS][:RECENT_EVENTS]
    return sorted(noise + news, key=lambda e: e[0], reverse=True)


# -- Read at 3 a.m.: summary, worst first, failures in words --


def _reason_words(reason: str) -> str:
    if not reason:
        return "no reason given"
    text = UNKNOWN_REASON_TEXT.get(reason) or REASON_TEXT.get(reason)
    return text or reason.replace("_", " ")


def worst_first(services: Sequence[ServiceStatus]) -> list[ServiceStatus]:
    """Disrupted, degraded, unknown, ok; then by title."""
    rank = {state: index for index, state in enumerate(STATE_ORDER)}
    return sorted(
        services,
        key=lambda s: (rank.get(s.disruption.state, len(rank)), s.title.casefold(), s.service),
    )


def summary(services: Sequence[ServiceStatus]) -> Summary:
    """Counts per state, unknown services grouped by reason, and the line the page leads with."""
    states = dict.fromkeys(STATE_ORDER, 0)
    groups: dict[str, list[ServiceStatus]] = {}
    for service in worst_first(services):
        state = service.disruption.state
        states[state] = states.get(state, 0) + 1
        if state == "unknown":
            # Why it is unknown: its reasons less the warning signs.
            why = [r for r in service.disruption.reasons if r not in REASON_LENS]
            for reason in why or [""]:
                groups.setdefault(reason, []).append(service)
    unknown = tuple(
        UnknownGroup(
            reason or None,
            _reason_words(reason),
            tuple(s.service for s in members),
            tuple(s.title for s in members),
        )
        for reason, members in sorted(groups.items(), key=lambda g: (-len(g[1]), not g[0], g[0]))
    )
    parts = _summary_parts(len(services), states, unknown)
    return Summary(
        len(services),
        states,
        parts[0][0] if parts else None,
        unknown,
        " · ".join(text for _, text in parts) or "No services configured.",
        tuple(parts),
    )


def _summary_parts(
    total: int, states: dict[str, int], unknown: Sequence[UnknownGroup]
) -> list[tuple[str, str]]:
    """(state, words) per state present, worst first: "2 of 9 disrupted", "1 unknown: …"."""
    if total and states.get("ok") == total:
        return [("ok", f"All {total} OK" if total > 1 else "1 of 1 OK")]
    parts: list[tuple[str, str]] = []
    for state in STATE_ORDER:
        count = states.get(state, 0)
        if not count:
            continue
        word = "OK" if state == "ok" else state
        text = f"{count} {word}" if parts else f"{count} of {total} {word}"
        if state == "unknown":
            groups = []
            for group in unknown:
                names = group.titles
                who = ", ".join(names) if len(names) <= SUMMARY_NAMES else f"{len(names)} services"
                groups.append(f"{group.text} ({who})")
            text += ": " + "; ".join(groups)
        parts.append((state, text))
    return parts
