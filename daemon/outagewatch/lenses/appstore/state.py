"""App Store chart ranks as the pipeline keeps them: the last good read of each
chart, failures per feed, and a bounded rank history for rank velocity.

A failed fetch never touches the ranks: the last good snapshot stays (its age
is the feed's last-success time), so "feed failed" is never read as "dropped
out of the chart".
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from outagewatch.keys import chart_of_feed_key
from outagewatch.lenses.appstore import ChartSnapshot

# One service's rank in one chart of one country.
RankKey = tuple[str, str, str]  # (service, country, chart)

HISTORY_WINDOW = 48 * 3600.0
# Caps a series even at short intervals: 48 h of one point a minute fits.
HISTORY_MAX_POINTS = 4096
HISTORY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class RankPoint:
    """Where an app stood at one time; ``rank`` None means out of the top ``depth``."""

    time: float
    rank: int | None
    depth: int

    @property
    def position(self) -> int:
        """The rank, or just below the chart when out of it (a lower bound)."""
        return self.rank if self.rank is not None else self.depth + 1


class RankHistory:
    """Recent rank points per (service, country, chart), bounded by age and count.

    ``snapshot()`` and ``load()`` move it to and from plain JSON-ready data, so
    a store can keep it across restarts.
    """

    def __init__(
        self, window: float = HISTORY_WINDOW, max_points: int = HISTORY_MAX_POINTS
    ) -> None:
        self.window = window
        self.max_points = max_points
        self._series: dict[RankKey, deque[RankPoint]] = {}

    def record(self, key: RankKey, point: RankPoint) -> None:
        """Append a point; points older than the window before it are dropped."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = deque(maxlen=self.max_points)
        if series and point.time < series[-1].time:
            return  # out of order: history only moves forward
        series.append(point)
        horizon = point.time - self.window
        while series and series[0].time < horizon:
            series.popleft()

    def points(self, key: RankKey) -> tuple[RankPoint, ...]:
        """The points of one series, oldest first (empty when unknown)."""
        return tuple(self._series.get(key, ()))

    def series_keys(self) -> list[RankKey]:
        return sorted(self._series)

    def retain(self, keep: Iterable[tuple[str, str]]) -> None:
        """Keep only the series of these (country, chart) feeds."""
        feeds = set(keep)
        for key in [k for k in self._series if (k[1], k[2]) not in feeds]:
            del self._series[key]

    def snapshot(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) for a store to persist."""
        return {
            "format": HISTORY_FORMAT,
            "series": [
                {
                    "service": service,
                    "country": country,
                    "chart": chart,
                    "points": [[p.time, p.rank, p.depth] for p in self._series[key]],
                }
                for key in self.series_keys()
                for service, country, chart in [key]
            ],
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the history with one from ``snapshot()``; ValueError when malformed."""
        if data.get("format") != HISTORY_FORMAT:
            raise ValueError(f"unknown rank history format {data.get('format')!r}")
        loaded: dict[RankKey, deque[RankPoint]] = {}
        try:
            for item in data["series"]:
                key = (str(item["service"]), str(item["country"]), str(item["chart"]))
                series: deque[RankPoint] = deque(maxlen=self.max_points)
                for time, rank, depth in item["points"]:
                    series.append(
                        RankPoint(float(time), None if rank is None else int(rank), int(depth))
                    )
                loaded[key] = series
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed rank history: {exc!r}") from None
        self._series = loaded


@dataclass(frozen=True, slots=True)
class RankVelocity:
    """How fast an app moved over a window: positive ``places_per_hour`` is a climb."""

    places_per_hour: float
    since: float
    rank_then: int | None
    rank_now: int | None
    entered_top: bool


def rank_velocity(
    points: Sequence[RankPoint], now: float, window: float = 3600.0, top: int = 10
) -> RankVelocity | None:
    """Places climbed per hour over the last ``window`` seconds, and whether the
    app entered the top ``top`` in that time.

    The start is the last point at or before ``now - window`` (else the oldest
    point inside the window). Out of the chart counts as one place below it, so
    a climb from outside is a lower bound. None when there are not two points
    to compare or the newest point is older than the window (a stale feed).
    """
    seen = [p for p in points if p.time <= now]
    if len(seen) < 2:
        return None
    current = seen[-1]
    if now - current.time > window:
        return None
    start = seen[0]
    for point in seen:
        if point.time <= now - window:
            start = point
    elapsed = current.time - start.time
    if elapsed <= 0:
        return None
    return RankVelocity(
        places_per_hour=(start.position - current.position) * 3600.0 / elapsed,
        since=start.time,
        rank_then=start.rank,
        rank_now=current.rank,
        entered_top=current.rank is not None and current.rank <= top < start.position,
    )


@dataclass
class ChartFeedState:
    """One chart feed: its last good snapshot and its failures by reason."""

    last: ChartSnapshot | None = None
    last_success_time: float | None = None
    failures: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class ServiceRank:
    """A tracked app's standing in the last good read of one chart."""

    service: str
    country: str
    chart: str
    rank: int | None
    depth: int


@dataclass
class AppStoreState:
    """Every chart feed by (country, chart), and the rank history."""

    feeds: dict[tuple[str, str], ChartFeedState] = field(default_factory=dict)
    history: RankHistory = field(default_factory=RankHistory)

    def apply(self, snapshot: ChartSnapshot) -> None:
        """A good read: it replaces the feed's ranks and extends the history."""
        feed = self._feed((snapshot.country, snapshot.chart))
        feed.last = snapshot
        feed.last_success_time = snapshot.time
        for service, app_id in snapshot.apps.items():
            self.history.record(
                (service, snapshot.country, snapshot.chart),
                RankPoint(snapshot.time, snapshot.ranks.get(app_id), snapshot.depth),
            )

    def record_failure(self, source_key: str, reason: str) -> None:
        """A failed fetch: counted; the last good ranks stay as they were."""
        chart = chart_of_feed_key(source_key)
        if chart is not None:
            self._feed(chart).failures[reason] += 1

    def retain(self, source_keys: Iterable[str]) -> None:
        """Forget feeds (and their history) the config no longer has."""
        keep = {c for c in map(chart_of_feed_key, source_keys) if c is not None}
        for chart in set(self.feeds) - keep:
            del self.feeds[chart]
        self.history.retain(keep)

    def service_ranks(self) -> Iterator[ServiceRank]:
        """Each tracked app in each chart's last good read, in label order."""
        for (country, chart), feed in sorted(self.feeds.items()):
            if feed.last is None:
                continue
            for service, app_id in sorted(feed.last.apps.items()):
                yield ServiceRank(
                    service, country, chart, feed.last.ranks.get(app_id), feed.last.depth
                )

    def best_ranks(self) -> dict[tuple[str, str], int]:
        """Best rank of each service per chart across countries (only where charted)."""
        best: dict[tuple[str, str], int] = {}
        for item in self.service_ranks():
            if item.rank is not None:
                key = (item.service, item.chart)
                best[key] = min(item.rank, best.get(key, item.rank))
        return best

    def _feed(self, chart: tuple[str, str]) -> ChartFeedState:
        feed = self.feeds.get(chart)
        if feed is None:
            feed = self.feeds[chart] = ChartFeedState()
        return feed
