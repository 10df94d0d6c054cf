"""The metric catalogue (every name, type, help and label set) and the collector.

The collector renders the pipeline's state at scrape time, so a target removed
from the config disappears from /metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from outagewatch.clock import Clock
from outagewatch.detect.disruption import REASONS, STATES
from outagewatch.detect.tracker import LEAD_OUTCOMES
from outagewatch.observations import (
    CHAT_OUTCOMES,
    COMPONENT_STATUSES,
    IMPACT_LEVELS,
    PHASES,
    worst_status,
)
from outagewatch.pipeline import State
from outagewatch.store import Store


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: Literal["gauge", "counter", "histogram", "info"]
    help: str
    labels: tuple[str, ...] = ()


_PROBE = ("service", "probe")
_SOURCE = ("source", "kind")
_CHART = ("country", "chart")

CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "outagewatch_build_info",
            "gauge",
            "Build information; always 1.",
            ("version", "revision", "python_version"),
        ),
        MetricSpec(
            "outagewatch_config_last_reload_successful",
            "gauge",
            "Whether the last configuration load succeeded (1) or failed (0).",
        ),
        MetricSpec(
            "outagewatch_config_last_reload_success_timestamp_seconds",
            "gauge",
            "Time of the last successful configuration load.",
        ),
        MetricSpec(
            "outagewatch_probe_success",
            "gauge",
            "Whether the last run of the probe succeeded (1) or failed (0); "
            "absent until the first conclusive run.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_duration_seconds",
            "gauge",
            "Duration of each phase of the last probe run (only with metrics.probe_details).",
            (*_PROBE, "phase"),
        ),
        MetricSpec(
            "outagewatch_probe_last_duration_seconds",
            "gauge",
            "Total duration of the last probe run (only with metrics.probe_details).",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_total_duration_seconds",
            "histogram",
            "Total duration of the service's probe runs, by probe kind.",
            ("service", "kind"),
        ),
        MetricSpec(
            "outagewatch_probe_phase_seconds_total",
            "counter",
            "Seconds the service's probe runs spent in each phase, by probe kind; over "
            "outagewatch_probe_total_duration_seconds_count, the mean per run.",
            ("service", "kind", "phase"),
        ),
        MetricSpec(
            "outagewatch_probe_http_status_code",
            "gauge",
            "HTTP status code of the last probe response (0 when none).",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
            "gauge",
            "Earliest expiry of the certificates the server last presented.",
            _PROBE,
        ),
        MetricSpec("outagewatch_probes_total", "counter", "Probe runs.", _PROBE),
        MetricSpec(
            "outagewatch_probe_failures_total",
            "counter",
            "Failed probe runs, by reason and sub-reason (empty where the reason has none).",
            (*_PROBE, "reason", "sub_reason"),
        ),
        MetricSpec(
            "outagewatch_probe_inconclusive_total",
            "counter",
            "Probe runs answered by a bot challenge: neither up nor down; absent until the first.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_last_success_timestamp_seconds",
            "gauge",
            "Time of the probe's last successful run (only with metrics.probe_details).",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_ttft_seconds",
            "histogram",
            "Time from sending a chat probe's request to the first text of the answer.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_duration_seconds",
            "gauge",
            "Total time of the last chat probe run.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_max_chunk_gap_seconds",
            "gauge",
            "Largest gap between consecutive chunks of the last chat probe stream.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_output_tokens_per_second",
            "gauge",
            "Output tokens per second after the first token, from the usage the last "
            "stream reported.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_outcome",
            "gauge",
            "Outcome class of the last chat probe run: 1 for the current class, 0 for the others.",
            (*_PROBE, "outcome"),
        ),
        MetricSpec(
            "outagewatch_chat_ratelimit_remaining_ratio",
            "gauge",
            "Remaining share of the provider's rate limit, from the last response's headers.",
            (*_PROBE, "resource"),
        ),
        MetricSpec(
            "outagewatch_chat_retry_after_seconds",
            "gauge",
            "Retry-After of the last chat probe response; absent when it sent none.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_should_retry",
            "gauge",
            "x-should-retry of the last chat probe response (1 true, 0 false); absent when "
            "it sent none.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_chat_budget_remaining_ratio",
            "gauge",
            "Remaining share of today's (UTC) tightest chat budget cap, probe's or service's.",
            (*_PROBE, "resource"),
        ),
        MetricSpec(
            "outagewatch_chat_budget_exhausted",
            "gauge",
            "Whether a daily budget cap is reached (1): the probe pauses until the next UTC day.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_status_component",
            "gauge",
            "Official status of each configured component: 1 on its current status.",
            ("service", "component", "status"),
        ),
        MetricSpec(
            "outagewatch_status_component_info",
            "gauge",
            "The page's current name of each configured component (replaced on a rename).",
            ("service", "component", "name"),
        ),
        MetricSpec(
            "outagewatch_status_open_incidents_dropped",
            "gauge",
            "Open official incidents the pages listed beyond the cap kept per page "
            "(50, the most severe then most recent): not counted elsewhere.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_status_level",
            "gauge",
            "Official level: 0 none, 1 minor, 2 major, 3 critical; the worst of the page "
            "indicator and every open incident's impact (maintenance apart).",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_status_open_incidents",
            "gauge",
            "Open official incidents, by impact.",
            ("service", "impact"),
        ),
        MetricSpec(
            "outagewatch_status_incident_start_timestamp_seconds",
            "gauge",
            "Start of the earliest open official incident; absent when none is open.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_status_maintenance_active",
            "gauge",
            "Whether the status page shows maintenance in progress.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_status_last_success_timestamp_seconds",
            "gauge",
            "Time of the last good reading of the service's status pages (the oldest "
            "when it has several); the status metrics are that old.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_source_runs_total",
            "counter",
            "Scheduled runs of each source (of a probe's, only with metrics.probe_details).",
            _SOURCE,
        ),
        MetricSpec(
            "outagewatch_source_failures_total",
            "counter",
            "Source runs that observed nothing, by reason.",
            (*_SOURCE, "reason"),
        ),
        MetricSpec(
            "outagewatch_source_last_run_duration_seconds",
            "gauge",
            "Duration of the source's last run (of a probe's, only with metrics.probe_details).",
            _SOURCE,
        ),
        MetricSpec(
            "outagewatch_source_last_success_timestamp_seconds",
            "gauge",
            "Time of the source's last successful run (of a probe's, only with "
            "metrics.probe_details).",
            _SOURCE,
        ),
        MetricSpec(
            "outagewatch_scheduler_lateness_seconds",
            "histogram",
            "Delay from a run's planned start (plus its jitter) to its actual start.",
        ),
        MetricSpec(
            "outagewatch_appstore_rank",
            "gauge",
            "1-based rank of the service's app in the chart's last good read; "
            "absent when out of the chart (see in_chart and chart_depth).",
            ("service", *_CHART),
        ),
        MetricSpec(
            "outagewatch_appstore_in_chart",
            "gauge",
            "Whether the service's app was in the chart's last good read (1) or "
            "out of its top chart_depth (0).",
            ("service", *_CHART),
        ),
        MetricSpec(
            "outagewatch_appstore_chart_depth",
            "gauge",
            "Number of entries in the chart's last good read (the N of top N).",
            _CHART,
        ),
        MetricSpec(
            "outagewatch_traffic_value",
            "gauge",
            "Last value of the service's traffic query (its series summed), in the query's unit.",
            ("service", "query"),
        ),
        MetricSpec(
            "outagewatch_traffic_series",
            "gauge",
            "Series in the last result of the service's traffic query.",
            ("service", "query"),
        ),
        MetricSpec(
            "outagewatch_appstore_best_rank",
            "gauge",
            "Best rank of the service's app in the chart across countries; "
            "absent when out of it everywhere.",
            ("service", "chart"),
        ),
        MetricSpec(
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            "gauge",
            "Time of the chart feed's last good read; ranks are as of this time.",
            _CHART,
        ),
        MetricSpec(
            "outagewatch_appstore_feed_failures_total",
            "counter",
            "Chart fetches that failed (ranks kept from the last good read), by reason.",
            (*_CHART, "reason"),
        ),
        MetricSpec(
            "outagewatch_reports_total",
            "counter",
            "Users' outage reports that counted (one per reporter per service per window).",
            ("service", "problem"),
        ),
        MetricSpec(
            "outagewatch_reports_duplicates_total",
            "counter",
            "Reports answered but not counted: the reporter already reported within the window.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_reports_rejected_total",
            "counter",
            "Refused report submissions, by reason.",
            ("reason",),
        ),
        MetricSpec(
            "outagewatch_reports_baseline_per_5m",
            "gauge",
            "Expected reports per 5 minutes at this hour of the week.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_reports_last_5m",
            "gauge",
            "Reports that counted in the last 5 minutes.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_reports_ratio_to_baseline",
            "gauge",
            "Reports in the last 5 minutes over the baseline (at least the configured floor).",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_store_commit_duration_seconds",
            "histogram",
            "Time to write and commit one grouped store transaction.",
        ),
        MetricSpec(
            "outagewatch_store_commit_failures_total",
            "counter",
            "Store transactions that failed to commit.",
        ),
        MetricSpec(
            "outagewatch_store_size_bytes",
            "gauge",
            "Size of the store's database file and its write-ahead log.",
        ),
        MetricSpec(
            "outagewatch_spike_score",
            "gauge",
            "Spike score of the signal's last point: 0..1, 0.5 where a test reaches its "
            "alarm level.",
            ("service", "signal"),
        ),
        MetricSpec(
            "outagewatch_spike_active",
            "gauge",
            "Whether a spike of the signal is in progress (1): from its alert until back near "
            "the baseline.",
            ("service", "signal"),
        ),
        MetricSpec(
            "outagewatch_spike_baseline",
            "gauge",
            "Expected value of the signal's last point, in the signal's unit.",
            ("service", "signal"),
        ),
        MetricSpec(
            "outagewatch_spikes_total",
            "counter",
            "Spike alerts (onsets) of the signal.",
            ("service", "signal"),
        ),
        MetricSpec(
            "outagewatch_disruption_state",
            "gauge",
            "The service's disruption state: 1 on the current one of ok, degraded, disrupted, "
            "unknown.",
            ("service", "state"),
        ),
        MetricSpec(
            "outagewatch_disruption_reason",
            "gauge",
            "Whether each rule of the disruption state holds for the service now (1) or not (0).",
            ("service", "reason"),
        ),
        MetricSpec(
            "outagewatch_disruption_since_timestamp_seconds",
            "gauge",
            "When the service entered its current disruption state.",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_detection_lead_seconds",
            "gauge",
            "For the service's latest official incident that outagewatch flagged: how long "
            "before the incident's start it was flagged (negative when after).",
            ("service",),
        ),
        MetricSpec(
            "outagewatch_detection_incidents_total",
            "counter",
            "Official incidents by how outagewatch compared: flagged early, late, or missed.",
            ("service", "outcome"),
        ),
        MetricSpec(
            "outagewatch_http_connections",
            "gauge",
            "Inbound HTTP connections open now (past the TLS handshake).",
        ),
        MetricSpec(
            "outagewatch_http_connections_limit",
            "gauge",
            "Most inbound HTTP connections held open at once (--web.max-connections, "
            "lowered to leave the probes their file descriptors).",
        ),
        MetricSpec(
            "outagewatch_http_connections_refused_total",
            "counter",
            "Inbound connections closed at once because the limit was reached.",
        ),
        MetricSpec(
            "outagewatch_http_header_timeouts_total",
            "counter",
            "Inbound connections closed because no request head arrived in time.",
        ),
        MetricSpec(
            "outagewatch_vantage_healthy",
            "gauge",
            "Whether this daemon's own network looks healthy (1) or failing (0): then services "
            "failing locally are unknown, not disrupted.",
            (),
        ),
        MetricSpec(
            "outagewatch_vantage_control_up",
            "gauge",
            "Whether the vantage control target answered (1) or has failed enough runs to "
            "count (0); absent until its first run.",
            ("control",),
        ),
        MetricSpec(
            "outagewatch_vantage_services_failing_locally_ratio",
            "gauge",
            "Share of the services with a fresh probe reading whose probes fail with local-class "
            "reasons (dns, connect, local, unknown CA).",
            (),
        ),
    )
}


# The families of each probe and each source: per target, so /metrics at scale renders
# them from a cache (exposition.py). Those the shipped dashboards and rules use, and
# the per-probe details only with metrics.probe_details (about 0.5 kB a probe).
PROBE_FAMILIES = (
    "outagewatch_probe_success",
    "outagewatch_probe_http_status_code",
    "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
    "outagewatch_probes_total",
    "outagewatch_probe_failures_total",
    "outagewatch_probe_inconclusive_total",
)
PROBE_DETAIL_FAMILIES = (
    "outagewatch_probe_duration_seconds",
    "outagewatch_probe_last_duration_seconds",
    "outagewatch_probe_last_success_timestamp_seconds",
)


def is_probe_source(key: str) -> bool:
    """Whether a source key is a probe's (``service/probe/name``, sources.base)."""
    return key.split("/", 2)[1:2] == ["probe"]


RUN_FAMILIES = (
    "outagewatch_source_runs_total",
    "outagewatch_source_failures_total",
    "outagewatch_source_last_run_duration_seconds",
    "outagewatch_source_last_success_timestamp_seconds",
)


def family(name: str) -> Metric:
    """An empty metric family for a catalogued name."""
    spec = CATALOGUE[name]
    labels = list(spec.labels)
    if spec.type == "counter":
        return CounterMetricFamily(name, spec.help, labels=labels)
    if spec.type == "histogram":
        return HistogramMetricFamily(name, spec.help, labels=labels)
    return GaugeMetricFamily(name, spec.help, labels=labels)


class Families:
    """The families one collector pass fills, in catalogue order."""

    def __init__(self, *names: str) -> None:
        self._families = {name: family(name) for name in names}

    def add(self, name: str, labels: list[str], value: float) -> None:
        fam = self._families[name]
        assert isinstance(fam, GaugeMetricFamily | CounterMetricFamily)
        fam.add_metric(labels, value)

    def add_histogram(
        self, name: str, labels: list[str], buckets: list[tuple[str, float]], total: float
    ) -> None:
        fam = self._families[name]
        assert isinstance(fam, HistogramMetricFamily)
        fam.add_metric(labels, buckets, total)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


class StateCollector(Collector):
    """Renders State as metric families at scrape time."""

    def __init__(
        self,
        state: State,
        version: str,
        revision: str,
        python_version: str,
        probe_details: bool = False,
    ) -> None:
        self._state = state
        self._build = [version, revision, python_version]
        self._details = probe_details

    def collect(self) -> Iterator[Metric]:
        state = self._state
        fams = Families(
            "outagewatch_build_info",
            "outagewatch_config_last_reload_successful",
            "outagewatch_config_last_reload_success_timestamp_seconds",
        )
        fams.add("outagewatch_build_info", self._build, 1)
        fams.add("outagewatch_config_last_reload_successful", [], int(state.config_reload_ok))
        if state.config_reload_time is not None:
            fams.add(
                "outagewatch_config_last_reload_success_timestamp_seconds",
                [],
                state.config_reload_time,
            )
        yield from fams
        yield from self._probes(state)
        yield from self._probe_durations(state)
        yield from self._chats(state)
        yield from self._status_pages(state)
        yield from self._runs(state)
        yield from self._appstore(state)
        yield from self._traffic(state)
        yield from self._scheduler(state)

    def _traffic(self, state: State) -> Families:
        fams = Families("outagewatch_traffic_value", "outagewatch_traffic_series")
        for (service, query), sample in sorted(state.traffic.items()):
            fams.add("outagewatch_traffic_value", [service, query], sample.value)
            fams.add("outagewatch_traffic_series", [service, query], sample.series)
        return fams

    def _probes(self, state: State) -> Families:
        details = self._details
        fams = Families(*PROBE_FAMILIES, *(PROBE_DETAIL_FAMILIES if details else ()))
        for (service, probe_name), probe in sorted(state.probes.items()):
            labels = [service, probe_name]
            # An inconclusive run says nothing: keep the last conclusive answer.
            if probe.last_conclusive is not None:
                fams.add("outagewatch_probe_success", labels, int(probe.last_conclusive))
            last = probe.last
            if last is not None:
                if details:
                    for phase in PHASES:
                        fams.add(
                            "outagewatch_probe_duration_seconds",
                            [*labels, phase],
                            last.phases.get(phase, 0.0),
                        )
                    fams.add(
                        "outagewatch_probe_last_duration_seconds", labels, last.duration_seconds
                    )
                fams.add("outagewatch_probe_http_status_code", labels, last.status_code or 0)
                if last.tls_earliest_expiry is not None:
                    fams.add(
                        "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
                        labels,
                        last.tls_earliest_expiry,
                    )
            fams.add("outagewatch_probes_total", labels, probe.runs)
            for (reason, sub_reason), count in sorted(probe.failures.items()):
                fams.add("outagewatch_probe_failures_total", [*labels, reason, sub_reason], count)
            if probe.inconclusive:
                fams.add("outagewatch_probe_inconclusive_total", labels, probe.inconclusive)
            if details and probe.last_success_time is not None:
                fams.add(
                    "outagewatch_probe_last_success_timestamp_seconds",
                    labels,
                    probe.last_success_time,
                )
        return fams

    def _probe_durations(self, state: State) -> Families:
        # Per service and kind, not per probe: 13 series a probe would double a
        # scrape at thousands of probes, and a 30 s probe gives a quantile little to use.
        fams = Families(
            "outagewatch_probe_total_duration_seconds", "outagewatch_probe_phase_seconds_total"
        )
        for (service, kind), hist in sorted(state.probe_durations.items()):
            fams.add_histogram(
                "outagewatch_probe_total_duration_seconds",
                [service, kind],
                hist.cumulative(),
                hist.sum,
            )
        for (service, kind), phases in sorted(state.probe_phases.items()):
            for phase in PHASES:
                fams.add(
                    "outagewatch_probe_phase_seconds_total",
                    [service, kind, phase],
                    phases.get(phase, 0.0),
                )
        return fams

    def _chats(self, state: State) -> Families:
        fams = Families(
            "outagewatch_chat_ttft_seconds",
            "outagewatch_chat_duration_seconds",
            "outagewatch_chat_max_chunk_gap_seconds",
            "outagewatch_chat_output_tokens_per_second",
            "outagewatch_chat_outcome",
            "outagewatch_chat_ratelimit_remaining_ratio",
            "outagewatch_chat_retry_after_seconds",
            "outagewatch_chat_should_retry",
            "outagewatch_chat_budget_remaining_ratio",
            "outagewatch_chat_budget_exhausted",
        )
        for (service, probe_name), chat in sorted(state.chats.items()):
            labels = [service, probe_name]
            last = chat.last
            if last is not None:
                hist = chat.ttft
                fams.add_histogram(
                    "outagewatch_chat_ttft_seconds", labels, hist.cumulative(), hist.sum
                )
                if chat.last_duration is not None:
                    fams.add("outagewatch_chat_duration_seconds", labels, chat.last_duration)
                if last.max_chunk_gap_seconds is not None:
                    fams.add(
                        "outagewatch_chat_max_chunk_gap_seconds", labels, last.max_chunk_gap_seconds
                    )
                if last.output_tokens_per_second is not None:
                    fams.add(
                        "outagewatch_chat_output_tokens_per_second",
                        labels,
                        last.output_tokens_per_second,
                    )
                for outcome in CHAT_OUTCOMES:
                    fams.add(
                        "outagewatch_chat_outcome", [*labels, outcome], int(outcome == last.outcome)
                    )
                for resource, ratio in sorted(last.ratelimit_remaining.items()):
                    fams.add(
                        "outagewatch_chat_ratelimit_remaining_ratio", [*labels, resource], ratio
                    )
                if last.retry_after_seconds is not None:
                    fams.add(
                        "outagewatch_chat_retry_after_seconds", labels, last.retry_after_seconds
                    )
                if last.should_retry is not None:
                    fams.add("outagewatch_chat_should_retry", labels, int(last.should_retry))
            if chat.budget is not None:
                for resource, ratio in sorted(chat.budget.remaining.items()):
                    fams.add("outagewatch_chat_budget_remaining_ratio", [*labels, resource], ratio)
                fams.add("outagewatch_chat_budget_exhausted", labels, int(chat.budget.exhausted))
        return fams

    def _status_pages(self, state: State) -> Families:
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
        services = sorted({service for service, _ in state.status_pages})
        for service in services:
            readings = [
                page.last for (svc, _), page in sorted(state.status_pages.items()) if svc == service
            ]
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

    def _runs(self, state: State) -> Families:
        fams = Families(*RUN_FAMILIES)
        for key, run in sorted(state.runs.items()):
            labels = [key, run.kind]
            for reason, count in sorted(run.failures.items()):
                fams.add("outagewatch_source_failures_total", [*labels, reason], count)
            # A probe's runs and their times are its probe's series.
            if not self._details and is_probe_source(key):
                continue
            fams.add("outagewatch_source_runs_total", labels, run.runs)
            if run.last_duration is not None:
                fams.add("outagewatch_source_last_run_duration_seconds", labels, run.last_duration)
            if run.last_success_time is not None:
                fams.add(
                    "outagewatch_source_last_success_timestamp_seconds",
                    labels,
                    run.last_success_time,
                )
        return fams

    def _appstore(self, state: State) -> Families:
        fams = Families(
            "outagewatch_appstore_rank",
            "outagewatch_appstore_in_chart",
            "outagewatch_appstore_chart_depth",
            "outagewatch_appstore_best_rank",
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            "outagewatch_appstore_feed_failures_total",
        )
        appstore = state.appstore
        for item in appstore.service_ranks():
            labels = [item.service, item.country, item.chart]
            if item.rank is not None:
                fams.add("outagewatch_appstore_rank", labels, item.rank)
            fams.add("outagewatch_appstore_in_chart", labels, int(item.rank is not None))
        for (service, chart), rank in sorted(appstore.best_ranks().items()):
            fams.add("outagewatch_appstore_best_rank", [service, chart], rank)
        for (country, chart), feed in sorted(appstore.feeds.items()):
            labels = [country, chart]
            if feed.last is not None:
                fams.add("outagewatch_appstore_chart_depth", labels, feed.last.depth)
            if feed.last_success_time is not None:
                fams.add(
                    "outagewatch_appstore_feed_last_success_timestamp_seconds",
                    labels,
                    feed.last_success_time,
                )
            for reason, count in sorted(feed.failures.items()):
                fams.add("outagewatch_appstore_feed_failures_total", [*labels, reason], count)
        return fams

    def _scheduler(self, state: State) -> Families:
        fams = Families("outagewatch_scheduler_lateness_seconds")
        hist = state.scheduler_lateness
        fams.add_histogram(
            "outagewatch_scheduler_lateness_seconds", [], hist.cumulative(), hist.sum
        )
        return fams


class ReportsCollector(Collector):
    """Renders report counts, baselines and store health at scrape time."""

    def __init__(self, state: State, clock: Clock, store: Store) -> None:
        self._state = state
        self._clock = clock
        self._store = store

    def collect(self) -> Iterator[Metric]:
        reports = self._state.reports
        now = self._clock.time()
        fams = Families(
            "outagewatch_reports_total",
            "outagewatch_reports_duplicates_total",
            "outagewatch_reports_rejected_total",
            "outagewatch_reports_baseline_per_5m",
            "outagewatch_reports_last_5m",
            "outagewatch_reports_ratio_to_baseline",
            "outagewatch_store_commit_duration_seconds",
            "outagewatch_store_commit_failures_total",
            "outagewatch_store_size_bytes",
        )
        for service, counts in sorted(reports.services.items()):
            for problem in reports.problems:
                fams.add("outagewatch_reports_total", [service, problem], counts.total[problem])
            fams.add("outagewatch_reports_duplicates_total", [service], counts.duplicates)
            baseline = reports.baseline(service, now)
            last = counts.last_5m(now)
            fams.add("outagewatch_reports_baseline_per_5m", [service], baseline)
            fams.add("outagewatch_reports_last_5m", [service], last)
            fams.add(
                "outagewatch_reports_ratio_to_baseline",
                [service],
                last / max(baseline, reports.floor_per_5m),
            )
        for reason, count in sorted(reports.rejected.items()):
            fams.add("outagewatch_reports_rejected_total", [reason], count)
        hist = self._store.commit_durations
        fams.add_histogram(
            "outagewatch_store_commit_duration_seconds", [], hist.cumulative(), hist.sum
        )
        fams.add("outagewatch_store_commit_failures_total", [], self._store.commit_failures)
        fams.add("outagewatch_store_size_bytes", [], self._store.size_bytes())
        yield from fams


class DetectionCollector(Collector):
    """Renders spike detectors, disruption states and detection leads at scrape time."""

    def __init__(self, state: State) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        signals = self._state.signals
        tracker = self._state.disruption
        fams = Families(
            "outagewatch_spike_score",
            "outagewatch_spike_active",
            "outagewatch_spike_baseline",
            "outagewatch_spikes_total",
            "outagewatch_disruption_state",
            "outagewatch_disruption_reason",
            "outagewatch_disruption_since_timestamp_seconds",
            "outagewatch_detection_lead_seconds",
            "outagewatch_detection_incidents_total",
            "outagewatch_vantage_healthy",
            "outagewatch_vantage_control_up",
            "outagewatch_vantage_services_failing_locally_ratio",
        )
        vantage = self._state.vantage
        fams.add("outagewatch_vantage_healthy", [], int(vantage.verdict.healthy))
        fams.add(
            "outagewatch_vantage_services_failing_locally_ratio", [], vantage.verdict.local_share
        )
        for target in sorted(vantage.controls):
            up = int(target not in vantage.verdict.failing_controls)
            fams.add("outagewatch_vantage_control_up", [target], up)
        for (service, signal), status in sorted(signals.status.items()):
            labels = [service, signal]
            verdict = status.verdict
            fams.add("outagewatch_spike_score", labels, verdict.score)
            fams.add("outagewatch_spike_active", labels, int(verdict.active))
            if math.isfinite(verdict.baseline):
                fams.add("outagewatch_spike_baseline", labels, verdict.baseline)
            fams.add("outagewatch_spikes_total", labels, signals.spikes_total[(service, signal)])
        for service, current in sorted(tracker.status.items()):
            for state in STATES:
                active = int(current.state == state)
                fams.add("outagewatch_disruption_state", [service, state], active)
            for reason in REASONS:
                holds = int(reason in current.reasons)
                fams.add("outagewatch_disruption_reason", [service, reason], holds)
            fams.add("outagewatch_disruption_since_timestamp_seconds", [service], current.since)
            lead = tracker.last_lead(service)
            if lead is not None and lead.seconds is not None:
                fams.add("outagewatch_detection_lead_seconds", [service], lead.seconds)
            for outcome in LEAD_OUTCOMES:
                fams.add(
                    "outagewatch_detection_incidents_total",
                    [service, outcome],
                    tracker.lead_outcomes[(service, outcome)],
                )
        yield from fams
