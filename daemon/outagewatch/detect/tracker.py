"""Each service's disruption status over time: evidence in, transitions and leads out.

The rules are in ``detect/disruption.py``; this module gathers the evidence
from the pipeline's state, keeps each service's status, its recent transitions
(logged, persisted, and offered to the status page by ``recent_events``), and
the detection lead of every official incident.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Generator, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog

from outagewatch.config import ChatProbeBase, Config, DisruptionConfig, ServiceConfig
from outagewatch.detect.disruption import (
    FLAGGED,
    STATES,
    DisruptionStatus,
    Lead,
    PageEvidence,
    ProbeEvidence,
    Reading,
    ServiceEvidence,
    SpikeEvidence,
    Transition,
    Verdict,
    incident_lead,
    judge,
    step,
)
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.signals import (
    FAILURE_BUCKET_S,
    REPORT_BUCKET_S,
    SignalDetectors,
    counts_as_failure,
    traffic_signal,
)
from outagewatch.detect.vantage import is_local_failure
from outagewatch.incidents import IncidentLog, IncidentRecord
from outagewatch.observations import ProbeResult, status_source_key, traffic_source_key
from outagewatch.sources.base import probe_source_key

if TYPE_CHECKING:
    from outagewatch.pipeline import State

LEAD_OUTCOMES: Final = ("early", "late", "missed")
# Leads kept (the oldest go first); as many as the incident log keeps.
MAX_LEADS: Final = 1000
_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class IncidentLead:
    """The detection lead of one official incident (see ``disruption.Lead``)."""

    service: str
    page: str
    incident: str
    start: float
    outcome: str
    seconds: float | None


def incident_start(record: IncidentRecord) -> float:
    """The provider's start, else when the page published it, else when we first saw it."""
    for time in (record.start, record.created):
        if time is not None:
            return time
    return record.first_seen


@dataclass
class ProbeStreaks:
    """A probe's trailing streaks, kept run by run so judging never rereads its runs."""

    last: float | None = None  # time of the last run that said success or failure
    failing: int = 0
    overloaded: int = 0
    succeeded: bool = False  # since start: a probe never up cannot vouch for its service
    local: bool = False  # the trailing failures are of a local class (see detect/vantage.py)
    # The evidence last built from these streaks: most probes have not run since the
    # previous judgement, and building it anew for 10,000 probes held the loop 30 ms.
    evidence: ProbeEvidence | None = None

    def observe(self, result: ProbeResult) -> None:
        failed = counts_as_failure(result)
        if failed is None:
            return  # says neither: does not break a streak
        self.evidence = None
        self.last = result.time
        self.failing = self.failing + 1 if failed else 0
        self.succeeded = self.succeeded or not failed
        # The last failure decides: a streak ending in a 503 says the provider answered.
        self.local = failed and is_local_failure(result.reason, result.detail, result.sub_reason)
        overloaded = result.chat is not None and result.chat.outcome == "overloaded"
        self.overloaded = self.overloaded + 1 if overloaded else 0


# Probes read between two yields of a service's evidence (a few milliseconds).
EVIDENCE_SLICE: Final = 1000


def probe_evidence(
    name: str, streaks: ProbeStreaks, interval: float, started: float
) -> ProbeEvidence:
    """A probe's reading and trailing streaks."""
    cached = streaks.evidence
    if (
        cached is not None
        and cached.probe == name
        and cached.reading.interval == interval
        and cached.reading.started == started
    ):
        return cached
    evidence = ProbeEvidence(
        name,
        Reading(streaks.last, interval, started),
        streaks.failing,
        streaks.overloaded,
        streaks.succeeded,
        streaks.local,
    )
    streaks.evidence = evidence
    return evidence


def service_evidence(
    service: str,
    cfg: ServiceConfig,
    config: Config,
    state: State,
    signals: SignalDetectors,
    scheduled: set[str],
    started: float,
) -> Generator[None, None, ServiceEvidence]:
    """What the rules need about ``service``, from the lenses this daemon runs.

    Yields every EVIDENCE_SLICE probes, so a caller on the event loop can let
    runs start in between; returns the evidence.
    """
    probes = []
    chat_intervals = []
    for count, (name, probe_cfg) in enumerate(cfg.probes.items(), 1):
        if count % EVIDENCE_SLICE == 0:
            yield
        if probe_source_key(service, name) not in scheduled:
            continue  # another shard's, or disabled
        probe = state.probes.get((service, name))
        streaks = probe.streaks if probe is not None else ProbeStreaks()
        probes.append(probe_evidence(name, streaks, probe_cfg.interval, started))
        if isinstance(probe_cfg, ChatProbeBase):
            chat_intervals.append(probe_cfg.interval)
    pages = []
    for name, page_cfg in cfg.status_pages.items():
        if status_source_key(service, name) not in scheduled:
            continue
        page = state.status_pages.get((service, name))
        run = state.runs.get(status_source_key(service, name))
        failing_since = run.failing_since if run is not None else None
        if page is None:
            reading = Reading(None, page_cfg.interval, started)
            pages.append(PageEvidence(name, 0, reading, failing_since))
        else:
            reading = Reading(page.last.time, page_cfg.interval, started)
            pages.append(PageEvidence(name, page.last.level, reading, failing_since))
    # How often each detector gets a point, for its freshness.
    cadence = {
        "reports": REPORT_BUCKET_S,
        "probes": max([FAILURE_BUCKET_S, min((p.reading.interval for p in probes), default=0.0)]),
        "chat": min(chat_intervals, default=0.0),
        "appstore": config.appstore.interval,
    }
    spikes = {}
    for signal, spec in SIGNAL_TABLE.items():
        interval = cadence[spec.cadence]
        status = signals.status.get((service, signal))
        if status is not None and interval > 0:
            reading = Reading(status.last_time, interval, started)
            spikes[signal] = SpikeEvidence(status.verdict.active, reading)
    for name, query_cfg in cfg.traffic.items():
        if traffic_source_key(service, name) not in scheduled:
            continue
        signal = traffic_signal(name)
        status = signals.status.get((service, signal))
        if status is not None:
            reading = Reading(status.last_time, query_cfg.interval, started)
            reason = "traffic_drop" if status.direction < 0 else "traffic_spike"
            spikes[signal] = SpikeEvidence(status.verdict.active, reading, reason)
    return ServiceEvidence(service, tuple(probes), tuple(pages), spikes)


class DisruptionTracker:
    """Per service: the status, the recent transitions, and the leads of incidents."""

    def __init__(self) -> None:
        self.rules = DisruptionConfig()
        self.status: dict[str, DisruptionStatus] = {}
        self.history: dict[str, deque[Transition]] = {}
        # When outagewatch first judged each service: incidents that started
        # earlier have no lead (it was not watching).
        self.history_start: dict[str, float] = {}
        self.started: dict[str, float] = {}
        # When each service was last judged, and, for a status restored from the
        # store, when the previous daemon last judged it (until evidence replaces it).
        self.judged: dict[str, float] = {}
        self.restored: dict[str, float] = {}
        self.leads: dict[tuple[str, str, str], IncidentLead] = {}
        self.lead_outcomes: Counter[tuple[str, str]] = Counter()
        self.log = structlog.get_logger("outagewatch.disruption")

    def configure(self, rules: DisruptionConfig, services: Iterable[str], now: float) -> None:
        """Take (re)loaded rules; start watching new services, forget removed ones."""
        self.rules = rules
        keep = set(services)
        for service in keep:
            self.started.setdefault(service, now)
            self.history_start.setdefault(service, now)
            self.status.setdefault(service, DisruptionStatus("unknown", now))
            history = self.history.get(service, ())
            self.history[service] = deque(history, maxlen=rules.history)
        for service in [s for s in self.status if s not in keep]:
            del self.status[service]
            self.history.pop(service, None)
            self.history_start.pop(service, None)
            self.started.pop(service, None)
            self.judged.pop(service, None)
            self.restored.pop(service, None)
        for key in [k for k in self.leads if k[0] not in keep]:
            del self.leads[key]
        for outcome_key in [k for k in self.lead_outcomes if k[0] not in keep]:
            del self.lead_outcomes[outcome_key]

    def evaluate(
        self, evidence: ServiceEvidence, now: float, vantage_healthy: bool = True
    ) -> Transition | None:
        """Judge one service now; the transition when its state changed."""
        service = evidence.service
        current = self.status.get(service)
        if current is None:
            return None  # not configured
        verdict = judge(evidence, now, self.rules, vantage_healthy)
        self.judged[service] = now
        restored = self.restored.get(service)
        if verdict.state != "unknown" or "vantage_unhealthy" in verdict.reasons:
            self.restored.pop(service, None)  # evidence of our own replaces the stored state
        elif restored is not None:
            if now - restored <= self.rules.restored_fresh_for:
                verdict = Verdict(None, frozenset())  # the stored state stands in, for now
            else:
                del self.restored[service]
        status = self.status[service] = step(current, verdict, now, self.rules)
        if status.state == current.state:
            return None
        transition = Transition(
            service, now, current.state, status.state, tuple(sorted(status.reasons))
        )
        self.history[service].append(transition)
        log = self.log.warning if status.state in FLAGGED else self.log.info
        log(
            "disruption_state_changed",
            service=service,
            previous=current.state,
            state=status.state,
            reasons=list(transition.reasons),
        )
        return transition

    def decide_leads(self, incidents: IncidentLog, now: float) -> list[IncidentLead]:
        """Compute the lead of every official incident not yet decided; returns new ones."""
        decided = []
        for record in incidents.records():
            key = (record.service, record.page, record.id)
            watched_from = self.history_start.get(record.service)
            if key in self.leads or watched_from is None:
                continue
            start = incident_start(record)
            if start < watched_from:
                continue  # began before outagewatch watched the service
            lead: Lead | None = incident_lead(
                list(self.history[record.service]), start, now, self.rules.lead_window
            )
            if lead is None:
                continue
            item = IncidentLead(
                record.service, record.page, record.id, start, lead.outcome, lead.seconds
            )
            self.leads[key] = item
            self.lead_outcomes[(record.service, lead.outcome)] += 1
            decided.append(item)
            self.log.info(
                "detection_lead",
                service=record.service,
                page=record.page,
                incident=record.id,
                outcome=lead.outcome,
                lead_seconds=lead.seconds,
            )
        while len(self.leads) > MAX_LEADS:
            del self.leads[min(self.leads, key=lambda k: self.leads[k].start)]
        return decided

    def last_lead(self, service: str) -> IncidentLead | None:
        """The lead of the service's latest incident (by start) that was flagged at all."""
        flagged = [
            lead
            for lead in self.leads.values()
            if lead.service == service and lead.seconds is not None
        ]
        return max(flagged, key=lambda lead: lead.start, default=None)

    def recent_events(self, limit: int = 200, service: str | None = None) -> list[Transition]:
        """The latest state transitions, newest first (for the status page)."""
        events = [
            transition
            for name, history in self.history.items()
            if service is None or name == service
            for transition in history
        ]
        events.sort(key=lambda t: t.time, reverse=True)
        return events[:limit]

    # -- persistence -----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state per service, keyed by service."""
        out: dict[str, Any] = {}
        for service, status in self.status.items():
            out[service] = {
                "format": _FORMAT,
                "state": status.state,
                "since": status.since,
                "judged": self.judged.get(service, self.restored.get(service)),
                "history_start": self.history_start[service],
                "transitions": [asdict(t) for t in self.history[service]],
                "leads": [asdict(lead) for lead in self.leads.values() if lead.service == service],
                "lead_outcomes": {
                    outcome: self.lead_outcomes[(service, outcome)]
                    for outcome in LEAD_OUTCOMES
                    if self.lead_outcomes[(service, outcome)]
                },
            }
        return out

    def load(self, stored: Mapping[str, Any]) -> list[str]:
        """Restore services from ``snapshot()`` values; returns those that were malformed.

        Call after ``configure``: a stored service no longer configured is skipped.
        """
        bad = []
        for service, value in stored.items():
            if service not in self.status:
                continue
            try:
                if value["format"] != _FORMAT or value["state"] not in STATES:
                    raise ValueError("unknown format or state")
                status = DisruptionStatus(str(value["state"]), float(value["since"]))
                # Older stores did not say when: such a state is not fresh evidence.
                raw_judged = value.get("judged")
                judged = None if raw_judged is None else float(raw_judged)
                history_start = float(value["history_start"])
                transitions = [
                    Transition(
                        str(t["service"]),
                        float(t["time"]),
                        str(t["previous"]),
                        str(t["state"]),
                        tuple(str(r) for r in t["reasons"]),
                    )
                    for t in value["transitions"]
                ]
                leads = [
                    IncidentLead(
                        str(x["service"]),
                        str(x["page"]),
                        str(x["incident"]),
                        float(x["start"]),
                        str(x["outcome"]),
                        None if x["seconds"] is None else float(x["seconds"]),
                    )
                    for x in value["leads"]
                ]
                outcomes = {str(k): int(v) for k, v in value["lead_outcomes"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                bad.append(service)
                continue
            self.status[service] = status
            self.restored.pop(service, None)
            if judged is not None:
                self.restored[service] = judged
            self.history_start[service] = history_start
            self.history[service] = deque(transitions, maxlen=self.rules.history)
            for lead in leads:
                self.leads[(lead.service, lead.page, lead.incident)] = lead
            for outcome, count in outcomes.items():
                self.lead_outcomes[(service, outcome)] = count
        return bad
