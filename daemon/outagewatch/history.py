"""Short in-memory history for the status page: probe success per service and
5 minutes, each chat probe's first-token time per minute, report counts per 5
minutes and notable events, each bounded by design.

Memory is the budget here (docs/benchmarks.md, "Memory"): an HTTP probe adds no
chart history of its own, only its last conclusive result (its successes are
counted into its service's 5-minute buckets, which is what the chart shows); a
chat probe keeps one typed-array ring of per-minute TTFT over the window. Every
buffer is allocated at its cap when first used, so its size does not grow with
time. Nothing here is persisted: after a restart the charts start empty and
fill again. Rank history lives with the App Store state (``ranks.RankHistory``).
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from outagewatch.failure_text import failure_text
from outagewatch.observations import ProbeResult, Report

HISTORY_WINDOW = 6 * 3600.0  # what the status page charts show
REPORT_BUCKET = 300.0  # report counts and probe success per 5 minutes, as the baseline is expressed
TTFT_SLOT = 60.0  # a chat probe's time to first token, averaged per minute
MAX_EVENTS = 200


@dataclass(frozen=True, slots=True)
class Event:
    """Something a reader of the status page should notice, in plain words."""

    time: float
    service: str
    kind: str  # a bounded word: probe_down, probe_up, incident_opened, ...
    text: str


def ring_slots(window: float, width: float) -> int:
    """Slots a ring needs to hold every slot that overlaps the window."""
    return int(window // width) + 2


class SuccessBuckets:
    """A service's conclusive probe runs and successes per 5-minute bucket.

    A ring of typed arrays (16 bytes a slot): a bucket's slot is its index modulo
    the ring's size, and a slot holding an older bucket is reset when reused.
    """

    __slots__ = ("index", "ok", "total")

    def __init__(self, slots: int) -> None:
        self.index = array("q", [-1]) * slots
        self.ok = array("I", [0]) * slots
        self.total = array("I", [0]) * slots

    def add(self, time: float, success: bool) -> None:
        index = int(time // REPORT_BUCKET)
        slot = index % len(self.index)
        held = self.index[slot]
        if held != index:
            if held > index:
                return  # older than anything the ring still holds
            self.index[slot], self.ok[slot], self.total[slot] = index, 0, 0
        self.ok[slot] += success
        self.total[slot] += 1

    def percent(self, since: float) -> list[tuple[float, float]]:
        """(bucket middle, percent of runs that succeeded) from ``since`` on, oldest first."""
        first = int(since // REPORT_BUCKET)
        held = sorted(
            (index, ok, total)
            for index, ok, total in zip(self.index, self.ok, self.total, strict=True)
            if index >= first and total
        )
        return [((index + 0.5) * REPORT_BUCKET, 100.0 * ok / total) for index, ok, total in held]


class TtftMinutes:
    """One chat probe's time to first token, averaged per minute, over the window.

    A ring of typed arrays (14 bytes a slot): the time of the minute's last run,
    the sum of its TTFTs and how many runs.
    """

    __slots__ = ("count", "time", "total")

    def __init__(self, slots: int) -> None:
        self.time = array("d", [-1.0]) * slots
        self.total = array("f", [0.0]) * slots
        self.count = array("H", [0]) * slots

    def add(self, time: float, ttft: float) -> None:
        minute = int(time // TTFT_SLOT)
        slot = minute % len(self.time)
        held = self.time[slot]
        if held < 0 or int(held // TTFT_SLOT) != minute:
            if held > time:
                return  # older than anything the ring still holds
            self.time[slot], self.total[slot], self.count[slot] = time, 0.0, 0
        elif time > held:
            self.time[slot] = time
        if self.count[slot] < 0xFFFF:
            self.total[slot] += ttft
            self.count[slot] += 1

    def points(self, since: float) -> list[tuple[float, float]]:
        """(time of the minute's last run, mean TTFT) from ``since`` on, oldest first."""
        return sorted(
            (time, round(total / count, 4))  # float32 sums: 0.1 ms is what they hold
            for time, total, count in zip(self.time, self.total, self.count, strict=True)
            if count and time >= since
        )


@dataclass
class ServiceHistory:
    """One service's chart history: success buckets, chat probes' TTFT, report buckets."""

    success: SuccessBuckets
    ttft: dict[str, TtftMinutes] = field(default_factory=dict)  # chat probes only
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
            success = SuccessBuckets(ring_slots(self.window, REPORT_BUCKET))
            history = self.services[name] = ServiceHistory(success)
        return history

    def probe(self, result: ProbeResult) -> None:
        """Count one probe run; note the moment a probe goes down or comes back."""
        history = self.service(result.service)
        ttft = result.chat.ttft_seconds if result.chat is not None else None
        if ttft is not None:
            minutes = history.ttft.get(result.probe)
            if minutes is None:
                slots = ring_slots(self.window, TTFT_SLOT)
                minutes = history.ttft[result.probe] = TtftMinutes(slots)
            minutes.add(result.time, ttft)
        if result.success is None:
            return
        history.success.add(result.time, result.success)
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

    def success_percent(self, service: str, since: float) -> list[tuple[float, float]]:
        """Share of the service's conclusive runs that succeeded, per 5-minute bucket."""
        history = self.services.get(service)
        return history.success.percent(since) if history else []

    def ttft_points(self, service: str, since: float) -> dict[str, list[tuple[float, float]]]:
        """Each chat probe's per-minute mean TTFT from ``since`` on, oldest first."""
        history = self.services.get(service)
        if history is None:
            return {}
        return {probe: minutes.points(since) for probe, minutes in sorted(history.ttft.items())}

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
        """Forget probes the config no longer has (or this shard no longer runs).

        Their past runs stay counted in the service's success buckets: they ran.
        """
        for name, history in self.services.items():
            for probe in [p for p in history.last_conclusive if (name, p) not in probes]:
                del history.last_conclusive[probe]
            for probe in [p for p in history.ttft if (name, p) not in probes]:
                del history.ttft[probe]
