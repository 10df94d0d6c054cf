"""Observations in; the latest state per key out. The one place that changes state.

The scheduler hands every finished run here: the run record is the framework's,
each observation goes to the lenses that fold its type (``lenses/registry.py``),
each into its own state in ``State.lenses``. The detection loop assembles each
service's evidence from the lenses (``service_evidence``) for ``detect/`` to
judge. The collectors and the web pages only read ``State``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from outagewatch.clock import Clock
from outagewatch.config import DisruptionConfig
from outagewatch.detect.disruption import (
    PageEvidence,
    ProbeEvidence,
    Reading,
    ServiceEvidence,
    SpikeEvidence,
)
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.signals import REPORT_BUCKET_S, SignalDetectors
from outagewatch.detect.tracker import (
    DisruptionTracker,
)
from outagewatch.detect.vantage import (
    judge_vantage,
)
from outagewatch.histogram import Histogram
from outagewatch.history import StatusHistory
from outagewatch.incidents import IncidentLog
from outagewatch.keys import (
    probe_source_key,
)
from outagewatch.lenses.base import EvidenceContext, Lens, LensStates
from outagewatch.lenses.registry import LENSES
from outagewatch.lenses.reports import ReportsLens
from outagewatch.lenses.reports.baseline import HOUR, RECENT_BUCKET, ReportsState
from outagewatch.lenses.vantage import VantageLens, control_evidence, vantage_config
from outagewatch.observations import (
    Observation,
    Report,
)

if TYPE_CHECKING:
    from outagewatch.config import Config, ServiceConfig
    from outagewatch.store import Store

# Scheduler lateness: a healthy event loop starts runs within a few milliseconds.
LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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
class State:
    """Everything the collectors and the pages read: the framework's parts, then each lens's."""

    runs: dict[str, SourceRunState] = field(default_factory=dict)
    incidents: IncidentLog = field(default_factory=IncidentLog)
    config_reload_ok: bool = True
    config_reload_time: float | None = None
    history: StatusHistory = field(default_factory=StatusHistory)
    signals: SignalDetectors = field(default_factory=SignalDetectors)
    disruption: DisruptionTracker = field(
        default_factory=lambda: DisruptionTracker(DisruptionConfig())
    )
    lenses: LensStates = field(default_factory=lambda: LensStates(LENSES))
    scheduler_lateness: Histogram = field(default_factory=lambda: Histogram(LATENESS_BUCKETS))


class Pipeline:
    """Applies observations and run outcomes to the state."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.state = State()
        # Each observation type to the lenses that fold it, in registry order.
        self._handlers: dict[type, list[Callable[[Any], None]]] = {}
        self._by_kind: dict[str, tuple[Lens[Any], Any]] = {}
        for lens, lens_state in self.state.lenses:
            for kind in lens.observations:
                self._handlers.setdefault(kind, []).append(self._lens_handler(lens, lens_state))
            for source_kind in lens.kinds:
                self._by_kind[source_kind] = (lens, lens_state)
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
            owner = self._by_kind.get(kind)
            if owner is not None:
                owner[0].run_failed(owner[1], key, error_reason)
        # Services are judged by the daemon's evaluation loop, not per run: judging
        # looks at all of a service's probes, which per run would cost O(probes²).
        self.ingest(observations)

    def ingest(self, observations: Iterable[Observation]) -> None:
        """Apply each observation to the state of its lens."""
        for observation in observations:
            for handle in self._handlers[type(observation)]:
                handle(observation)

    def _lens_handler(self, lens: Lens[Any], lens_state: Any) -> Callable[[Any], None]:
        def handle(observation: Any) -> None:
            lens.apply(self, lens_state, observation)

        return handle

    def apply(self, config: Config, source_keys: set[str]) -> None:
        """Take a reloaded config: forget what it dropped, take its report and
        detection settings."""
        probe_keys = {
            (service, probe)
            for service, cfg in config.services.items()
            for probe in cfg.probes
            if probe_source_key(service, probe) in source_keys
        }
        self.retain(source_keys, probe_keys)
        self.configure_reports(config)
        self.configure_detection(config, source_keys)

    def retain(self, source_keys: set[str], probe_keys: set[tuple[str, str]]) -> None:
        """Forget what the current config no longer has, so it leaves /metrics."""
        for key in set(self.state.runs) - source_keys:
            del self.state.runs[key]
        for lens, lens_state in self.state.lenses:
            lens.retain(lens_state, source_keys, probe_keys)
        self.state.history.retain_probes(probe_keys)

    def record_lateness(self, seconds: float) -> None:
        """How long after its planned time (plus its jitter) a run started."""
        self.state.scheduler_lateness.observe(max(0.0, seconds))

    def record_reload(self, ok: bool) -> None:
        self.state.config_reload_ok = ok
        if ok:
            self.state.config_reload_time = self.clock.time()

    # -- users' reports: pushed, not run; counted once the store has them ---

    @property
    def reports(self) -> ReportsState:
        return self.state.lenses.of(ReportsLens)

    async def start_reports(self, store: Store, config: Config) -> None:
        """Keep reports in ``store``; load the counts behind the baselines from it."""
        self.store = store
        self.configure_reports(config)
        reports = self.reports
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
        reports = self.reports
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
                self.ingest([report])
            else:
                self.reports.counts(report.service).duplicates += 1
        return verdicts

    def reject_report(self, reason: str) -> None:
        """Count a refused submission by its (bounded) reason."""
        self.reports.rejected[reason] += 1

    async def prune_reports(self, retention: float) -> int:
        """Delete stored reports older than ``retention`` seconds."""
        assert self.store is not None, "start_reports first"
        return await self.store.prune_reports(self.clock.time() - retention)

    # -- detection -----------------------------------------------------------

    def configure_detection(self, config: Config, scheduled: set[str]) -> None:
        """Take (re)loaded detection settings and rules, and the keys of the sources run."""
        self.detection_config = config
        self.scheduled = set(scheduled)
        now = self.clock.time()
        services = list(config.services)
        traffic = [key for lens, _ in self.state.lenses for key in lens.signal_keys(config)]
        self.state.signals.configure(config.detection, services, traffic)
        self.state.disruption.configure(config.disruption, services, now)
        for service in services:
            counts = self.reports.counts(service)
            bucket_start = now - now % REPORT_BUCKET_S
            held = sum(n for b, n in counts.recent.items() if b * RECENT_BUCKET >= bucket_start)
            self.state.signals.open_reports(service, now, held)

    def detect_steps(self) -> Iterator[None]:
        """Close ended signal buckets, judge every service, decide incident leads.

        Yields between slices of a big service's probes (the daemon's loop sleeps there).
        """
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
                service, cfg, config, state, self.scheduled, started
            )
            services.append(evidence)
        # Our own vantage point first: it decides whether local failures say anything.
        own = state.lenses.of(VantageLens)
        started = min(tracker.started.values(), default=now)
        controls = control_evidence(own, config, started)
        vantage = judge_vantage(
            controls, services, now, vantage_config(config), config.disruption.stale_intervals
        )
        if vantage.healthy != own.verdict.healthy:
            log = self.log.info if vantage.healthy else self.log.error
            log(
                "vantage_healthy" if vantage.healthy else "vantage_unhealthy",
                failing_controls=list(vantage.failing_controls),
                services_failing_locally=vantage.services_failing_locally,
                services=vantage.services,
            )
        own.verdict = vantage
        for evidence in services:
            tracker.evaluate(evidence, now, vantage.healthy)
        tracker.decide_leads(state.incidents, now)


def service_evidence(
    service: str,
    cfg: ServiceConfig,
    config: Config,
    state: State,
    scheduled: set[str],
    started: float,
) -> Generator[None, None, ServiceEvidence]:
    """What the rules need about ``service``, from the lenses this daemon runs.

    Yields every EVIDENCE_SLICE probes, so a caller on the event loop can let
    runs start in between; returns the evidence.
    """
    signals = state.signals
    probes: list[ProbeEvidence] = []
    pages: list[PageEvidence] = []
    # How often each lens's detectors get a point (SIGNAL_TABLE's cadence), for freshness.
    cadence: dict[str, float] = {}
    ctx = EvidenceContext(service, cfg, config, signals, state.runs, scheduled, started)
    parts = []
    for lens, lens_state in state.lenses:
        part = yield from lens.evidence(lens_state, ctx)
        parts.append(part)
        probes.extend(part.probes)
        pages.extend(part.pages)
        for name, interval in part.cadence.items():
            cadence[name] = min(interval, cadence.get(name, interval))
    spikes = {}
    for signal, spec in SIGNAL_TABLE.items():
        interval = cadence.get(spec.cadence, 0.0)
        status = signals.status.get((service, signal))
        if status is not None and interval > 0:
            reading = Reading(status.last_time, interval, started)
            spikes[signal] = SpikeEvidence(status.verdict.active, reading)
    for part in parts:
        spikes.update(part.spikes)
    return ServiceEvidence(service, tuple(probes), tuple(pages), spikes)
