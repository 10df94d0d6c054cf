"""Observations in; the latest state per key out. The one place that knows state.

The scheduler hands every finished run here. The collector and the web pages
only read ``State``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from outagewatch.baseline import HOUR, RECENT_BUCKET, ReportsState
from outagewatch.clock import Clock
from outagewatch.detect.disruption import LOCAL_REASONS, Reading
from outagewatch.detect.signals import REPORT_BUCKET_S, SignalDetectors
from outagewatch.detect.tracker import DisruptionTracker, ProbeStreaks, service_evidence
from outagewatch.detect.vantage import (
    HEALTHY,
    ControlEvidence,
    ControlStreak,
    VantageVerdict,
    judge_vantage,
)
from outagewatch.history import StatusHistory
from outagewatch.incidents import IncidentLog
from outagewatch.observations import (
    CHART_FEED_KIND,
    ChartSnapshot,
    ChatBudgetStatus,
    ChatStats,
    ControlResult,
    Observation,
    ProbeResult,
    Report,
    StatusSnapshot,
    TrafficSample,
    status_source_key,
    traffic_source_key,
)
from outagewatch.ranks import AppStoreState
from outagewatch.sources.control import control_source_key

if TYPE_CHECKING:
    from outagewatch.config import Config
    from outagewatch.store import Store

# Probe latency buckets: from a fast API edge to a slow web app.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Time to first token: a healthy chatbot answers in well under a few seconds.
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
# Incident changes in one fetch logged one by one; more make one line with counts.
_INCIDENT_LINES_PER_FETCH = 5
# At most one log line a minute per probe about a failure cause that changed.
DETAIL_LOG_INTERVAL = 60.0
# Scheduler lateness: a healthy event loop starts runs within a few milliseconds.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Histogram:
    """Cumulative-at-render histogram: counts per bucket, sum, count."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """Buckets as (le, cumulative count), ending with +Inf."""
        out, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass
class ProbeState:
    """What we know of one probe: its last result and its lifetime counters."""

    kind: str
    last: ProbeResult | None = None
    last_conclusive: bool | None = None
    last_success_time: float | None = None
    runs: int = 0
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (reason, sub_reason)
    inconclusive: int = 0
    streaks: ProbeStreaks = field(default_factory=ProbeStreaks)
    detail_logged: tuple[str | None, float] = (None, float("-inf"))  # detail, monotonic time


@dataclass
class ChatState:
    """What we know of one chat probe beyond the shared probe state."""

    last: ChatStats | None = None
    last_duration: float | None = None
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    budget: ChatBudgetStatus | None = None


@dataclass
class SourceRunState:
    """The framework's record of one scheduled job's runs."""

    kind: str
    runs: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    last_duration: float | None = None
    last_success_time: float | None = None
    last_error: str | None = None
    failing_since: float | None = None  # the first failed run since the last success


@dataclass
class StatusPageState:
    """The last good reading of one official status page; kept while fetches fail."""

    kind: str
    last: StatusSnapshot


@dataclass
class VantageState:
    """The control targets' streaks and the last judgement of our own vantage point."""

    controls: dict[str, ControlStreak] = field(default_factory=dict)
    verdict: VantageVerdict = HEALTHY


@dataclass
class State:
    """Everything the collector and the pages read."""

    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    probe_durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # service, kind
    # Seconds spent in each phase, summed per service and kind: the per-probe phase
    # series cost five lines a probe on /metrics (docs/http-probes.md).
    probe_phases: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    runs: dict[str, SourceRunState] = field(default_factory=dict)
    chats: dict[tuple[str, str], ChatState] = field(default_factory=dict)
    status_pages: dict[tuple[str, str], StatusPageState] = field(default_factory=dict)
    incidents: IncidentLog = field(default_factory=IncidentLog)
    config_reload_ok: bool = True
    config_reload_time: float | None = None
    appstore: AppStoreState = field(default_factory=AppStoreState)
    reports: ReportsState = field(default_factory=ReportsState)
    history: StatusHistory = field(default_factory=StatusHistory)
    signals: SignalDetectors = field(default_factory=SignalDetectors)
    disruption: DisruptionTracker = field(default_factory=DisruptionTracker)
    vantage: VantageState = field(default_factory=VantageState)
    traffic: dict[tuple[str, str], TrafficSample] = field(default_factory=dict)  # service, query
    scheduler_lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BUCKETS))


class Pipeline:
    """Applies observations and run outcomes to the state."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._handlers: dict[type, Callable[[Any], None]] = {
            ProbeResult: self._probe,
            ChatBudgetStatus: self._chat_budget,
            ChartSnapshot: self._chart,
            StatusSnapshot: self._status,
            Report: self._report,
            ControlResult: self._control,
            TrafficSample: self._traffic,
        }
        self.state = State()
        self.log = structlog.get_logger("outagewatch.pipeline")
        self.store: Store | None = None
        self.detection_config: Config | None = None
        self.scheduled: set[str] = set()

    def record_run(
        self,
        key: str,
        kind: str,
        duration: float,
        observations: Sequence[Observation] = (),
        error_reason: str | None = None,
        error_detail: str | None = None,
    ) -> None:
        """One finished run of a source: its outcome, then what it observed."""
        run = self.state.runs.get(key)
        if run is None:
            run = self.state.runs[key] = SourceRunState(kind)
        run.runs += 1
        run.last_duration = duration
        if error_reason is None:
            run.last_success_time = self.clock.time()
            run.last_error = None
            run.failing_since = None
        else:
            if run.failing_since is None:
                run.failing_since = self.clock.time()
            run.failures[error_reason] += 1
            run.last_error = f"{error_reason}: {error_detail}" if error_detail else error_reason
            if kind == CHART_FEED_KIND:
                self.state.appstore.record_failure(key, error_reason)
        # Services are judged by the daemon's evaluation loop, not per run: judging
        # looks at all of a service's probes, which per run would cost O(probes²).
        self.ingest(observations)

    def ingest(self, observations: Iterable[Observation]) -> None:
        """Apply each observation to the state of its lens."""
        for observation in observations:
            self._handlers[type(observation)](observation)

    def _probe(self, result: ProbeResult) -> None:
        key = (result.service, result.probe)
        probe = self.state.probes.get(key)
        if probe is None:
            probe = self.state.probes[key] = ProbeState(result.kind)
        probe.last = result
        probe.runs += 1
        durations = self.state.probe_durations.get((result.service, result.kind))
        if durations is None:
            durations = self.state.probe_durations[(result.service, result.kind)] = Histogram(
                DURATION_BUCKETS
            )
        durations.observe(result.duration_seconds)
        phases = self.state.probe_phases.setdefault((result.service, result.kind), {})
        for phase, seconds in result.phases.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
        local = result.reason in LOCAL_REASONS
        if local:
            # This host failed, not the target: no reading, `outagewatch_probe_success`
            # keeps its last value (docs/runbooks.md), but the cause is still logged.
            self._failure_detail(probe, result)
        elif result.success is not None:
            if probe.last_conclusive is not None and probe.last_conclusive != result.success:
                # Transitions, not every run: a down endpoint must not flood the log.
                self.log.warning(
                    "probe_up" if result.success else "probe_down",
                    service=result.service,
                    probe=result.probe,
                    reason=result.reason,
                    sub_reason=result.sub_reason,
                    detail=result.detail,
                )
                probe.detail_logged = (result.detail, self.clock.monotonic())
            elif result.success is False:
                self._failure_detail(probe, result)
            probe.last_conclusive = result.success
        if result.success:
            probe.last_success_time = result.time
        elif result.success is None:
            probe.inconclusive += 1
        else:
            probe.failures[(result.reason or "unknown", result.sub_reason or "")] += 1
        probe.streaks.observe(result)
        if not local:  # no point on the success chart, no down/up event
            self.state.history.probe(result)
        if result.chat is not None:
            self._chat(result, result.chat)
        self.state.signals.probe(result)

    def _failure_detail(self, probe: ProbeState, result: ProbeResult) -> None:
        """Log why a probe fails: at its first failure, then when the cause changes.

        A probe failing from start has no up -> down change to log; a cause that
        keeps changing (a flapping error text) is logged at most once a minute.
        """
        logged, at = probe.detail_logged
        now = self.clock.monotonic()
        if at > float("-inf") and (result.detail == logged or now - at < DETAIL_LOG_INTERVAL):
            return
        probe.detail_logged = (result.detail, now)
        self.log.warning(
            "probe_failing",
            service=result.service,
            probe=result.probe,
            reason=result.reason,
            sub_reason=result.sub_reason,
            status_code=result.status_code,
            detail=result.detail,
        )

    def _control(self, result: ControlResult) -> None:
        streak = self.state.vantage.controls.setdefault(result.target, ControlStreak())
        if streak.last is not None and (streak.failing == 0) != result.success:
            self.log.warning(
                "control_up" if result.success else "control_down",
                control=result.target,
                reason=result.reason,
                detail=result.detail,
            )
        streak.observe(result.time, result.success, result.reason, result.detail)

    def _traffic(self, sample: TrafficSample) -> None:
        self.state.traffic[(sample.service, sample.query)] = sample
        self.state.signals.traffic(sample.service, sample.query, sample.time, sample.value)

    def _chat(self, result: ProbeResult, stats: ChatStats) -> None:
        chat = self.state.chats.setdefault((result.service, result.probe), ChatState())
        chat.last = stats
        chat.last_duration = result.duration_seconds
        if stats.ttft_seconds is not None:
            chat.ttft.observe(stats.ttft_seconds)

    def _chat_budget(self, status: ChatBudgetStatus) -> None:
        chat = self.state.chats.setdefault((status.service, status.probe), ChatState())
        chat.budget = status

    def _status(self, snapshot: StatusSnapshot) -> None:
        key = (snapshot.service, snapshot.page)
        self.state.status_pages[key] = StatusPageState(snapshot.kind, snapshot)
        opened, resolved = self.state.incidents.observe(snapshot)
        # A line per incident for the usual one or two; past that, one line per
        # fetch with counts, so a page listing thousands cannot flood the log.
        per_incident = len(opened) + len(resolved) <= _INCIDENT_LINES_PER_FETCH
        if not per_incident:
            self.log.warning(
                "status_incidents_changed",
                service=snapshot.service,
                page=snapshot.page,
                opened=len(opened),
                resolved=len(resolved),
                open_dropped=snapshot.open_incidents_dropped,
            )
        for record in opened:
            if per_incident:
                self.log.warning(
                    "status_incident_opened",
                    service=record.service,
                    page=record.page,
                    incident=record.id,
                    impact=record.impact,
                    title=record.name,
                )
            self.state.history.event(
                snapshot.time,
                record.service,
                "incident_opened",
                f"official page: {record.impact} incident opened: {record.name}",
            )
        for record in resolved:
            if per_incident:
                self.log.info(
                    "status_incident_resolved",
                    service=record.service,
                    page=record.page,
                    incident=record.id,
                )
            self.state.history.event(
                snapshot.time,
                record.service,
                "incident_resolved",
                f"official page: incident resolved: {record.name}",
            )

    def retain(self, source_keys: set[str], probe_keys: set[tuple[str, str]]) -> None:
        """Forget what the current config no longer has, so it leaves /metrics."""
        for key in set(self.state.runs) - source_keys:
            del self.state.runs[key]
        self.state.appstore.retain(source_keys)
        for pkey in set(self.state.probes) - probe_keys:
            del self.state.probes[pkey]
        kinds = {(service, probe.kind) for (service, _), probe in self.state.probes.items()}
        for dkey in set(self.state.probe_durations) - kinds:
            del self.state.probe_durations[dkey]
        for dkey in set(self.state.probe_phases) - kinds:
            del self.state.probe_phases[dkey]
        for pkey in set(self.state.chats) - probe_keys:
            del self.state.chats[pkey]
        controls = self.state.vantage.controls
        for target in [t for t in controls if control_source_key(t) not in source_keys]:
            del controls[target]
        for traffic_key in list(self.state.traffic):
            if traffic_source_key(*traffic_key) not in source_keys:
                del self.state.traffic[traffic_key]
        for page_key in list(self.state.status_pages):
            if status_source_key(*page_key) not in source_keys:
                del self.state.status_pages[page_key]
        self.state.history.retain_probes(probe_keys)

    def record_lateness(self, seconds: float) -> None:
        """How long after its planned time (plus its jitter) a run started."""
        self.state.scheduler_lateness.observe(max(0.0, seconds))

    def record_reload(self, ok: bool) -> None:
        self.state.config_reload_ok = ok
        if ok:
            self.state.config_reload_time = self.clock.time()

    # -- users' reports ----------------------------------------------------

    async def start_reports(self, store: Store, config: Config) -> None:
        """Keep reports in ``store``; load the counts behind the baselines from it."""
        self.store = store
        self.configure_reports(config)
        reports = self.state.reports
        now = self.clock.time()
        history = await store.report_history(reports.keep_hours_from(now) * HOUR, now)
        reports.history_start = history.history_start
        for service, hour, count in history.hourly:
            if service in config.services:
                reports.counts(service).hourly[hour] = count
        for service, bucket, count in history.recent:
            if service in config.services:
                reports.counts(service).recent[bucket] = count

    def configure_reports(self, config: Config) -> None:
        """Apply (re)loaded baseline settings; forget services no longer configured."""
        reports = self.state.reports
        reports.weeks = config.reports.baseline_weeks
        reports.min_weeks = config.reports.baseline_min_weeks
        reports.floor_per_5m = config.reports.baseline_floor_per_5m
        reports.problems = tuple(config.reports.problems)
        for service in set(reports.services) - set(config.services):
            del reports.services[service]
        self.state.history.retain_services(config.services)
        for service in config.services:
            reports.counts(service)  # every service exports its gauges from the start

    async def submit_reports(self, reports: Sequence[Report], window: float) -> list[bool]:
        """Store validated reports; count those that count. True per stored report.

        Returns only after the store committed them: the caller may acknowledge.
        """
        assert self.store is not None, "start_reports first"
        verdicts = await self.store.add_reports(reports, window)
        for report, counted in zip(reports, verdicts, strict=True):
            if counted:
                self._report(report)
            else:
                self.state.reports.counts(report.service).duplicates += 1
        return verdicts

    def reject_report(self, reason: str) -> None:
        """Count a refused submission by its (bounded) reason."""
        self.state.reports.rejected[reason] += 1

    async def prune_reports(self, retention: float) -> int:
        """Delete stored reports older than ``retention`` seconds."""
        assert self.store is not None, "start_reports first"
        return await self.store.prune_reports(self.clock.time() - retention)

    def _report(self, report: Report) -> None:
        reports = self.state.reports
        reports.roll(report.time)
        counts = reports.counts(report.service)
        counts.total[report.problem] += 1
        counts.add(report.time)
        self.state.history.report(report)
        self.state.signals.report(report.service, report.time)

    # -- detection -----------------------------------------------------------

    def _chart(self, snapshot: ChartSnapshot) -> None:
        appstore = self.state.appstore
        appstore.apply(snapshot)
        for service in sorted(snapshot.apps):
            # The best place over every chart and country; out of a chart is just below it.
            best = min(
                (r.rank if r.rank is not None else r.depth + 1)
                for r in appstore.service_ranks()
                if r.service == service
            )
            self.state.signals.rank(service, snapshot.time, best)

    def configure_detection(self, config: Config, scheduled: set[str]) -> None:
        """Take (re)loaded detection settings and rules, and the keys of the sources run."""
        self.detection_config = config
        self.scheduled = set(scheduled)
        now = self.clock.time()
        services = list(config.services)
        traffic = [
            (service, name)
            for service, cfg in config.services.items()
            for name, query in cfg.traffic.items()
            if query.enabled
        ]
        self.state.signals.configure(config.detection, services, traffic)
        self.state.disruption.configure(config.disruption, services, now)
        for service in services:
            counts = self.state.reports.counts(service)
            bucket_start = now - now % REPORT_BUCKET_S
            held = sum(n for b, n in counts.recent.items() if b * RECENT_BUCKET >= bucket_start)
            self.state.signals.open_reports(service, now, held)

    def detect(self) -> None:
        """Close ended signal buckets, judge every service, decide incident leads."""
        for _ in self.detect_steps():
            pass

    def detect_steps(self) -> Iterator[None]:
        """``detect`` in steps: yields between slices of a big service's probes."""
        config = self.detection_config
        if config is None:
            return
        now = self.clock.time()
        state = self.state
        state.signals.close(now)
        state.history.note_spikes(
            state.signals.spikes_total, {k: v.last_time for k, v in state.signals.status.items()}
        )
        tracker = state.disruption
        services = []
        for service in sorted(config.services):
            cfg = config.services.get(service)
            if cfg is None:
                continue
            started = tracker.started.get(service, now)
            evidence = yield from service_evidence(
                service, cfg, config, state, state.signals, self.scheduled, started
            )
            services.append(evidence)
        # Our own vantage point first: it decides whether local failures say anything.
        controls = self._control_evidence(config, now)
        vantage = judge_vantage(
            controls, services, now, config.vantage, config.disruption.stale_intervals
        )
        if vantage.healthy != state.vantage.verdict.healthy:
            log = self.log.info if vantage.healthy else self.log.error
            log(
                "vantage_healthy" if vantage.healthy else "vantage_unhealthy",
                failing_controls=list(vantage.failing_controls),
                services_failing_locally=vantage.services_failing_locally,
                services=vantage.services,
            )
        state.vantage.verdict = vantage
        for evidence in services:
            tracker.evaluate(evidence, now, vantage.healthy)
        tracker.decide_leads(state.incidents, now)

    def _control_evidence(self, config: Config, now: float) -> list[ControlEvidence]:
        started = min(self.state.disruption.started.values(), default=now)
        out = []
        for target, control in config.vantage.controls.items():
            streak = self.state.vantage.controls.get(target, ControlStreak())
            reading = Reading(streak.last, control.interval, started)
            out.append(ControlEvidence(target, reading, streak.failing))
        return out
