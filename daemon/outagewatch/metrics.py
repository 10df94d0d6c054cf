"""The collectors: the pipeline's state rendered as metric families at scrape time.

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
from outagewatch.detect.tracker import LEAD_OUTCOMES

if TYPE_CHECKING:
    from outagewatch.pipeline import State


class StateCollector(Collector):
    """Renders State as metric families at scrape time, all but the per-probe and
    per-source families: exposition.MetricsPage renders those (cached per target)."""

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
        for lens, lens_state in state.lenses:
            yield from lens.families(lens_state)
        yield from self._scheduler(state)

    def _scheduler(self, state: State) -> Families:
        fams = Families("outagewatch_scheduler_lateness_seconds")
        hist = state.scheduler_lateness
        fams.add_histogram(
            "outagewatch_scheduler_lateness_seconds", [], hist.cumulative(), hist.sum
        )
        return fams


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
        )
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
