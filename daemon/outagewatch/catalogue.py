"""The metric catalogue's core: the framework's names, types, help and label sets
(and those of the lenses whose entries have not moved into their package), and the
families built from them.

A lens with its own entries lists them in ``Lens.metrics``; the whole catalogue,
every name in one place, is ``lenses.registry.CATALOGUE``. Neutral ground: the
lenses render their own families with ``Families``, and the collectors
(``metrics.py``) and ``exposition.py`` render the framework's; none of them may be
imported by the lenses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: Literal["gauge", "counter", "histogram", "info"]
    help: str
    labels: tuple[str, ...] = ()


_PROBE = ("service", "probe")
_SOURCE = ("source", "kind")
_CHART = ("country", "chart")

CORE_CATALOGUE: dict[str, MetricSpec] = {
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
            "Failed probe runs; absent until the first (the reasons are per service, in "
            "outagewatch_probe_failure_reasons_total).",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_failure_reasons_total",
            "counter",
            "Failed probe runs of the service's probes, by reason and sub-reason (empty "
            "where the reason has none).",
            ("service", "reason", "sub_reason"),
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
            "outagewatch_chat_runs_total",
            "counter",
            "Chat probe runs by outcome class (ok or the failure's class); every class "
            "from the probe's first run.",
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
RUN_FAMILIES = (
    "outagewatch_source_runs_total",
    "outagewatch_source_failures_total",
    "outagewatch_source_last_run_duration_seconds",
    "outagewatch_source_last_success_timestamp_seconds",
)


def family(entry: str | MetricSpec) -> Metric:
    """An empty metric family for a core catalogue name or a lens's own entry."""
    spec = CORE_CATALOGUE[entry] if isinstance(entry, str) else entry
    labels = list(spec.labels)
    if spec.type == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=labels)
    if spec.type == "histogram":
        return HistogramMetricFamily(spec.name, spec.help, labels=labels)
    return GaugeMetricFamily(spec.name, spec.help, labels=labels)


class Families:
    """The families one collector pass fills, in the order given."""

    def __init__(self, *entries: str | MetricSpec) -> None:
        self._families = {
            entry if isinstance(entry, str) else entry.name: family(entry) for entry in entries
        }

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
