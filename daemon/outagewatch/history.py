"""Short in-memory history for the status page: recent probe results, report
counts per 5 minutes and notable events, bounded by age and by count.

Nothing here is persisted: after a restart the charts start empty and fill
again. Rank history lives with the App Store state (``ranks.RankHistory``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from outagewatch.failure_text import failure_text
from outagewatch.observations import ProbeResult, Report

HISTORY_WINDOW = 6 * 3600.0  # what the status page charts show
REPORT_BUCKET = 300.0  # report counts per 5 minutes, as the baseline is expressed
MAX_PROBE_POINTS = 2000  # per probe: 6 h at one run every ~11 s
MAX_EVENTS = 200


@dataclass(frozen=True, slots=True)
class ProbePoint:
    """One probe run as the charts need it."""

    time: float
    success: bool | None
    duration: float
    ttft: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """Something a reader of the status page should notice, in plain words."""

    time: float
    service: str
    kind: str  # a bounded word: probe_down, probe_up, incident_opened, ...
    text: str


@dataclass
class ServiceHistory:
    """One service's recent probe points (per probe) and report buckets."""

    probes: dict[str, deque[ProbePoint]] = field(default_factory=dict)
    report_buckets: dict[int, int] = field(default_factory=dict)  # bucket index -> count
    last_conclusive: dict[str, bool] = field(default_factory=dict)


class StatusHistory:
    """Recent series per service and the recent-events list, bounded in size."""

    def __init__(self, window: float = HISTORY_WINDOW, max_events: int = MAX_EVENTS) -> None:
        self.window = window
        self.services: dict[str, ServiceHistory] = {}
        self.events: deque[Event] = deque(maxlen=max_events)
        self._spikes_seen: dict[tuple[str, str], int] = {}

    def service(self, name: str) -> ServiceHistory:
        history = self.services.get(name)
        if history is None:
            history = self.services[name] = ServiceHistory()
        return history

    def probe(self, result: ProbeResult) -> None:
        """Keep one probe run; note the moment a probe goes down or comes back."""
        history = self.service(result.service)
        points = history.probes.get(result.probe)
        if points is None:
            points = history.probes[result.probe] = deque(maxlen=MAX_PROBE_POINTS)
        if points and result.time < points[-1].time:
            return  # history only moves forward
        ttft = result.chat.ttft_seconds if result.chat is not None else None
        points.append(ProbePoint(result.time, result.success, result.duration_seconds, ttft))
        while points and points[0].time < result.time - self.window:
            points.popleft()
        if result.success is None:
            return
        before = history.last_conclusive.get(result.probe)
        history.last_conclusive[result.probe] = result.success
        if before is not None and before != result.success:
            if result.success:
                text = f"probe {result.probe} is up again"
            else:
                words = failure_text(result.reason, result.sub_reason, result.status_code)
                text = f"probe {result.probe} failed: {words}"
            kind = "probe_up" if result.success else "probe_down"
            self.event(result.time, result.service, kind, text)

    def report(self, report: Report) -> None:
        """Count one report into its 5-minute bucket; drop buckets past the window."""
        buckets = self.service(report.service).report_buckets
        index = int(report.time // REPORT_BUCKET)
        buckets[index] = buckets.get(index, 0) + 1
        oldest = int((report.time - self.window) // REPORT_BUCKET)
        for old in [b for b in buckets if b < oldest]:
            del buckets[old]

    def event(self, time: float, service: str, kind: str, text: str) -> None:
        self.events.append(Event(time, service, kind, text))

    def note_spikes(
        self,
        spikes_total: Mapping[tuple[str, str], int],
        last_times: Mapping[tuple[str, str], float],
    ) -> None:
        """An event for each detector whose spike count rose since the last look.

        A detector seen for the first time only sets the mark: its count may be
        restored from the store, and those spikes are old news.
        """
        for key, total in spikes_total.items():
            seen = self._spikes_seen.get(key)
            self._spikes_seen[key] = total
            if seen is not None and total > seen and key in last_times:
                service, signal = key
                self.event(last_times[key], service, "spike", f"spike detected in {signal}")

    def probe_points(self, service: str, since: float) -> dict[str, list[ProbePoint]]:
        """Each probe's points from ``since`` on, oldest first."""
        history = self.services.get(service)
        if history is None:
            return {}
        return {
            probe: [p for p in points if p.time >= since]
            for probe, points in sorted(history.probes.items())
        }

    def report_counts(self, service: str, since: float, now: float) -> list[tuple[float, int]]:
        """(bucket start, reports) for every whole or current 5-minute bucket in range."""
        history = self.services.get(service)
        buckets = history.report_buckets if history else {}
        first, last = int(since // REPORT_BUCKET), int(now // REPORT_BUCKET)
        return [(b * REPORT_BUCKET, buckets.get(b, 0)) for b in range(first, last + 1)]

    def retain_services(self, services: Iterable[str]) -> None:
        """Forget services the config no longer has."""
        for name in set(self.services) - set(services):
            del self.services[name]

    def retain_probes(self, probes: set[tuple[str, str]]) -> None:
        """Forget probes the config no longer has (or this shard no longer runs)."""
        for name, history in self.services.items():
            for probe in [p for p in history.probes if (name, p) not in probes]:
                del history.probes[probe]
                history.last_conclusive.pop(probe, None)
