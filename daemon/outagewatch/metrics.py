"""The metric catalogue (every name, type, help and label set) and the collector.

The collector renders the pipeline's state at scrape time, so a target removed
from the config disappears from /metrics.
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
from prometheus_client.registry import Collector

from outagewatch.clock import Clock
from outagewatch.observations import PHASES
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
            "Duration of each phase of the last probe run.",
            (*_PROBE, "phase"),
        ),
        MetricSpec(
            "outagewatch_probe_total_duration_seconds",
            "histogram",
            "Total duration of probe runs.",
            _PROBE,
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
            "Failed probe runs, by reason.",
            (*_PROBE, "reason"),
        ),
        MetricSpec(
            "outagewatch_probe_inconclusive_total",
            "counter",
            "Probe runs answered by a bot challenge: neither up nor down.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_probe_last_success_timestamp_seconds",
            "gauge",
            "Time of the probe's last successful run.",
            _PROBE,
        ),
        MetricSpec(
            "outagewatch_source_runs_total", "counter", "Scheduled runs of each source.", _SOURCE
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
            "Duration of the source's last run.",
            _SOURCE,
        ),
        MetricSpec(
            "outagewatch_source_last_success_timestamp_seconds",
            "gauge",
            "Time of the source's last successful run.",
            _SOURCE,
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
    )
}


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

    def __init__(self, state: State, version: str, revision: str, python_version: str) -> None:
        self._state = state
        self._build = [version, revision, python_version]

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
        yield from self._runs(state)

    def _probes(self, state: State) -> Families:
        fams = Families(
            "outagewatch_probe_success",
            "outagewatch_probe_duration_seconds",
            "outagewatch_probe_total_duration_seconds",
            "outagewatch_probe_http_status_code",
            "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
            "outagewatch_probes_total",
            "outagewatch_probe_failures_total",
            "outagewatch_probe_inconclusive_total",
            "outagewatch_probe_last_success_timestamp_seconds",
        )
        for (service, probe_name), probe in sorted(state.probes.items()):
            labels = [service, probe_name]
            # An inconclusive run says nothing: keep the last conclusive answer.
            if probe.last_conclusive is not None:
                fams.add("outagewatch_probe_success", labels, int(probe.last_conclusive))
            last = probe.last
            if last is not None:
                for phase in PHASES:
                    fams.add(
                        "outagewatch_probe_duration_seconds",
                        [*labels, phase],
                        last.phases.get(phase, 0.0),
                    )
                fams.add("outagewatch_probe_http_status_code", labels, last.status_code or 0)
                if last.tls_earliest_expiry is not None:
                    fams.add(
                        "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
                        labels,
                        last.tls_earliest_expiry,
                    )
            hist = probe.durations
            fams.add_histogram(
                "outagewatch_probe_total_duration_seconds", labels, hist.cumulative(), hist.sum
            )
            fams.add("outagewatch_probes_total", labels, probe.runs)
            for reason, count in sorted(probe.failures.items()):
                fams.add("outagewatch_probe_failures_total", [*labels, reason], count)
            fams.add("outagewatch_probe_inconclusive_total", labels, probe.inconclusive)
            if probe.last_success_time is not None:
                fams.add(
                    "outagewatch_probe_last_success_timestamp_seconds",
                    labels,
                    probe.last_success_time,
                )
        return fams

    def _runs(self, state: State) -> Families:
        fams = Families(
            "outagewatch_source_runs_total",
            "outagewatch_source_failures_total",
            "outagewatch_source_last_run_duration_seconds",
            "outagewatch_source_last_success_timestamp_seconds",
        )
        for key, run in sorted(state.runs.items()):
            labels = [key, run.kind]
            fams.add("outagewatch_source_runs_total", labels, run.runs)
            for reason, count in sorted(run.failures.items()):
                fams.add("outagewatch_source_failures_total", [*labels, reason], count)
            if run.last_duration is not None:
                fams.add("outagewatch_source_last_run_duration_seconds", labels, run.last_duration)
            if run.last_success_time is not None:
                fams.add(
                    "outagewatch_source_last_success_timestamp_seconds",
                    labels,
                    run.last_success_time,
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
