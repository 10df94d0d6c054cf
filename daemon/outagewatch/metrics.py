"""The collectors: the pipeline's state, read through ``views.StatusQuery``, rendered
as metric families at scrape time.

Every name comes from the catalogue (``catalogue.py``); the lenses render their own
families, these the framework's (build, reload, scheduler, detection). A target
removed from the config disappears from /metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from outagewatch.catalogue import Families
from outagewatch.detect.disruption import REASONS, STATES

if TYPE_CHECKING:
    from outagewatch.views import StatusQuery


class StateCollector(Collector):
    """Renders the framework's families and each lens's at scrape time, all but the
    per-probe and per-source families: exposition.MetricsPage renders those (cached
    per target)."""

    def __init__(
        self, status: StatusQuery, version: str, revision: str, python_version: str
    ) -> None:
        self._status = status
        self._build = [version, revision, python_version]

    def collect(self) -> Iterator[Metric]:
        status = self._status
        reload = status.reload()
        fams = Families(
            "outagewatch_build_info",
            "outagewatch_config_last_reload_successful",
            "outagewatch_config_last_reload_success_timestamp_seconds",
        )
        fams.add("outagewatch_build_info", self._build, 1)
        fams.add("outagewatch_config_last_reload_successful", [], int(reload.ok))
        if reload.success_time is not None:
            fams.add(
                "outagewatch_config_last_reload_success_timestamp_seconds",
                [],
                reload.success_time,
            )
        yield from fams
        for lens, lens_state in status.lens_states():
            yield from lens.families(lens_state)
        yield from self._scheduler(status)

    def _scheduler(self, status: StatusQuery) -> Families:
        fams = Families("outagewatch_scheduler_lateness_seconds")
        hist = status.lateness()
        fams.add_histogram(
            "outagewatch_scheduler_lateness_seconds", [], list(hist.cumulative), hist.sum
        )
        return fams


class DetectionCollector(Collector):
    """Renders spike detectors, disruption states and detection leads at scrape time."""

    def __init__(self, status: StatusQuery) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
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
        )
        for spike in self._status.spikes():
            labels = [spike.service, spike.signal]
            fams.add("outagewatch_spike_score", labels, spike.score)
            fams.add("outagewatch_spike_active", labels, int(spike.active))
            if math.isfinite(spike.baseline):
                fams.add("outagewatch_spike_baseline", labels, spike.baseline)
            fams.add("outagewatch_spikes_total", labels, spike.spikes_total)
        for current in self._status.disruptions():
            service = current.service
            for state in STATES:
                active = int(current.state == state)
                fams.add("outagewatch_disruption_state", [service, state], active)
            for reason in REASONS:
                holds = int(reason in current.reasons)
                fams.add("outagewatch_disruption_reason", [service, reason], holds)
            fams.add("outagewatch_disruption_since_timestamp_seconds", [service], current.since)
            if current.lead_seconds is not None:
                fams.add("outagewatch_detection_lead_seconds", [service], current.lead_seconds)
            for outcome, count in current.incidents:
                fams.add("outagewatch_detection_incidents_total", [service, outcome], count)
        yield from fams
