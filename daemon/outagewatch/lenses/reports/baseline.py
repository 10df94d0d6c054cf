"""Report counts and the usual volume of reports for this hour of the week.

Counts are kept per epoch hour (for the baseline) and per 10 seconds (for
the last 5 minutes), updated with each report and loaded from the store with
one grouped query at start-up: nothing here scans the reports table.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

HOUR = 3600
WEEK_HOURS = 7 * 24
SLOTS_PER_HOUR = 12  # 5-minute slots
RECENT_BUCKET = 10  # seconds
RECENT_SPAN = 300  # the "last 5 minutes"
FALLBACK_HOURS = 24


def hour_of(ts: float) -> int:
    return int(ts // HOUR)


def expected_per_5m(
    hourly: Mapping[int, int],
    now: float,
    history_start: float,
    weeks: int,
    min_weeks: int,
) -> float:
    """Expected reports per 5 minutes at ``now``'s hour of the week.

    The median of the same hour over the last ``weeks`` weeks, counting only
    weeks the history covers (a covered hour without reports is a zero). With
    fewer than ``min_weeks`` such weeks, the median hour of the last day
    stands in: a recent level that one spike does not move.
    """
    hour = hour_of(now)
    first = hour_of(history_start)
    same_slot = [
        hourly.get(hour - k * WEEK_HOURS, 0)
        for k in range(1, weeks + 1)
        if hour - k * WEEK_HOURS >= first
    ]
    if len(same_slot) >= min_weeks:
        return statistics.median(same_slot) / SLOTS_PER_HOUR
    recent = [hourly.get(hour - k, 0) for k in range(1, FALLBACK_HOURS + 1) if hour - k >= first]
    if not recent:
        return 0.0
    return statistics.median(recent) / SLOTS_PER_HOUR


@dataclass
class ServiceReportCounts:
    """One service's report counters and the counts behind its baseline."""

    total: Counter[str] = field(default_factory=Counter)  # by problem, since start
    duplicates: int = 0
    hourly: dict[int, int] = field(default_factory=dict)
    recent: dict[int, int] = field(default_factory=dict)  # 10-second buckets

    def add(self, ts: float, count: int = 1) -> None:
        hour = hour_of(ts)
        self.hourly[hour] = self.hourly.get(hour, 0) + count
        bucket = int(ts // RECENT_BUCKET)
        self.recent[bucket] = self.recent.get(bucket, 0) + count

    def last_5m(self, now: float) -> int:
        oldest = int((now - RECENT_SPAN) // RECENT_BUCKET)
        return sum(count for bucket, count in self.recent.items() if bucket > oldest)

    def forget_before(self, hour: int, now: float) -> None:
        for old in [h for h in self.hourly if h < hour]:
            del self.hourly[old]
        oldest = int((now - RECENT_SPAN) // RECENT_BUCKET)
        for bucket in [b for b in self.recent if b <= oldest]:
            del self.recent[bucket]


@dataclass
class ReportsState:
    """Per service report counts, rejections by reason, and the baseline settings."""

    services: dict[str, ServiceReportCounts] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)
    history_start: float = 0.0
    weeks: int = 4
    min_weeks: int = 2
    floor_per_5m: float = 1.0
    problems: tuple[str, ...] = ()
    _pruned_hour: int = 0

    def counts(self, service: str) -> ServiceReportCounts:
        counts = self.services.get(service)
        if counts is None:
            counts = self.services[service] = ServiceReportCounts()
        return counts

    def keep_hours_from(self, now: float) -> int:
        """The oldest hour the baseline can still ask for."""
        return hour_of(now) - self.weeks * WEEK_HOURS - FALLBACK_HOURS

    def roll(self, now: float) -> None:
        """Once an hour, drop counts neither the baseline nor the last 5 minutes read."""
        hour = hour_of(now)
        if hour == self._pruned_hour:
            return
        self._pruned_hour = hour
        keep = self.keep_hours_from(now)
        for counts in self.services.values():
            counts.forget_before(keep, now)

    def baseline(self, service: str, now: float) -> float:
        counts = self.services.get(service)
        hourly = counts.hourly if counts else {}
        return expected_per_5m(hourly, now, self.history_start, self.weeks, self.min_weeks)
