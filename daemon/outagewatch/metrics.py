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

from outagewatch.observations import COMPONENT_STATUSES, IMPACT_LEVELS, PHASES, worst_status
from outagewatch.pipeline import State


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
            "outagewatch_status_component",
            "gauge",
            "Official status of each configured component: 1 on its current status.",
            ("service", "component", "status"),
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
        yield from self._status_pages(state)
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

    def _status_pages(self, state: State) -> Families:
        """Per service, over its pages' last good readings (see docs/status-pages.md)."""
        fams = Families(
            "outagewatch_status_component",
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
            for reading in readings:
                for component, status in reading.components.items():
                    components.setdefault(component, []).append(status)
            for component, statuses in components.items():
                current = worst_status(statuses)
                for status in COMPONENT_STATUSES:
                    fams.add(
                        "outagewatch_status_component",
                        [service, component, status],
                        int(status == current),
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
