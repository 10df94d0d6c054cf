"""Rank state: bounded history, its snapshot/load round trip, rank velocity,
best rank across countries, and forgetting feeds removed from the config."""

from __future__ import annotations

import json

import pytest

from outagewatch.lenses.appstore import ChartSnapshot
from outagewatch.lenses.appstore.state import AppStoreState, RankHistory, RankPoint, rank_velocity

T0 = 1_700_000_000.0
HOUR = 3600.0


def snapshot(
    country: str, chart: str, time: float, ranks: dict[str, int], depth: int = 100
) -> ChartSnapshot:
    return ChartSnapshot(
        country=country,
        chart=chart,
        time=time,
        depth=depth,
        ranks=ranks,
        apps={"claude": "6473753684", "chatgpt": "6448311069"},
    )


def test_history_keeps_only_the_window_and_at_most_max_points() -> None:
    history = RankHistory(window=2 * HOUR, max_points=5)
    key = ("claude", "us", "top-free")
    for i in range(10):
        history.record(key, RankPoint(T0 + i * 1800, 50 - i, 100))
    points = history.points(key)
    assert [p.time for p in points] == [T0 + i * 1800 for i in (5, 6, 7, 8, 9)]
    history.record(key, RankPoint(T0 + 10 * 1800 + 3 * HOUR, 1, 100))
    assert len(history.points(key)) == 1  # everything else fell out of the window


def test_history_ignores_points_older_than_the_last() -> None:
    history = RankHistory()
    key = ("claude", "us", "top-free")
    history.record(key, RankPoint(T0, 5, 100))
    history.record(key, RankPoint(T0 - 60, 9, 100))
    assert history.points(key) == (RankPoint(T0, 5, 100),)


def test_history_snapshot_and_load_round_trip_through_json() -> None:
    history = RankHistory()
    history.record(("claude", "us", "top-free"), RankPoint(T0, 12, 100))
    history.record(("claude", "us", "top-free"), RankPoint(T0 + 900, None, 100))
    history.record(("chatgpt", "jp", "top-grossing"), RankPoint(T0, 1, 100))
    data = json.loads(json.dumps(history.snapshot()))
    restored = RankHistory()
    restored.load(data)
    assert restored.series_keys() == history.series_keys()
    for key in history.series_keys():
        assert restored.points(key) == history.points(key)


@pytest.mark.parametrize(
    "data",
    [
        {"format": 99, "series": []},
        {"format": 1},
        {"format": 1, "series": [{"service": "claude", "country": "us", "points": []}]},
        {
            "format": 1,
            "series": [{"service": "c", "country": "us", "chart": "x", "points": [[1, 2]]}],
        },
    ],
)
def test_history_load_rejects_malformed_data_and_keeps_what_it_had(data: dict[str, object]) -> None:
    history = RankHistory()
    history.record(("claude", "us", "top-free"), RankPoint(T0, 12, 100))
    with pytest.raises(ValueError):
        history.load(data)
    assert history.points(("claude", "us", "top-free")) == (RankPoint(T0, 12, 100),)


def test_velocity_is_places_climbed_per_hour_and_flags_entering_the_top_10() -> None:
    points = [RankPoint(T0 + i * 900, rank, 100) for i, rank in enumerate((60, 40, 25, 15, 6))]
    velocity = rank_velocity(points, now=T0 + 4 * 900, window=HOUR)
    assert velocity is not None
    assert velocity.places_per_hour == pytest.approx(54.0)  # 60 -> 6 in one hour
    assert (velocity.rank_then, velocity.rank_now) == (60, 6)
    assert velocity.entered_top


def test_velocity_from_outside_the_chart_counts_one_place_below_it() -> None:
    points = [RankPoint(T0, None, 100), RankPoint(T0 + HOUR / 2, 51, 100)]
    velocity = rank_velocity(points, now=T0 + HOUR / 2, window=HOUR)
    assert velocity is not None
    assert velocity.places_per_hour == pytest.approx(100.0)  # 101 -> 51 in half an hour
    assert not velocity.entered_top


def test_velocity_starts_from_the_last_point_before_the_window() -> None:
    points = [
        RankPoint(T0, 90, 100),
        RankPoint(T0 + HOUR, 30, 100),
        RankPoint(T0 + 2 * HOUR, 20, 100),
    ]
    velocity = rank_velocity(points, now=T0 + 2 * HOUR, window=HOUR)
    assert velocity is not None
    assert velocity.since == T0 + HOUR
    assert velocity.places_per_hour == pytest.approx(10.0)


def test_falling_out_of_the_chart_is_a_negative_velocity() -> None:
    points = [RankPoint(T0, 3, 100), RankPoint(T0 + HOUR, None, 100)]
    velocity = rank_velocity(points, now=T0 + HOUR, window=HOUR)
    assert velocity is not None
    assert velocity.places_per_hour == pytest.approx(-98.0)
    assert not velocity.entered_top


def test_already_in_the_top_10_is_not_entering_it() -> None:
    points = [RankPoint(T0, 9, 100), RankPoint(T0 + HOUR, 2, 100)]
    velocity = rank_velocity(points, now=T0 + HOUR)
    assert velocity is not None
    assert not velocity.entered_top


def test_no_velocity_without_two_points_or_from_a_stale_feed() -> None:
    assert rank_velocity([RankPoint(T0, 5, 100)], now=T0) is None
    stale = [RankPoint(T0, 50, 100), RankPoint(T0 + 900, 5, 100)]
    assert rank_velocity(stale, now=T0 + 900 + 2 * HOUR, window=HOUR) is None
    assert rank_velocity(stale, now=T0 + 900, window=HOUR) is not None


def test_best_rank_is_the_best_across_countries_where_charted() -> None:
    state = AppStoreState()
    state.apply(snapshot("us", "top-free", T0, {"6473753684": 8, "6448311069": 1}))
    state.apply(snapshot("jp", "top-free", T0, {"6473753684": 3}))
    state.apply(snapshot("us", "top-grossing", T0, {}))
    assert state.best_ranks() == {
        ("claude", "top-free"): 3,
        ("chatgpt", "top-free"): 1,
    }


def test_failure_counts_against_its_feed_and_leaves_the_ranks() -> None:
    state = AppStoreState()
    state.apply(snapshot("us", "top-free", T0, {"6473753684": 8}))
    state.record_failure("appstore/us/top-free", "html")
    state.record_failure("claude/probe/api", "timeout")  # not a chart feed: ignored
    feed = state.feeds[("us", "top-free")]
    assert feed.failures == {"html": 1}
    assert feed.last is not None
    assert feed.last.ranks == {"6473753684": 8}
    assert list(state.feeds) == [("us", "top-free")]


def test_retain_forgets_removed_feeds_and_their_history() -> None:
    state = AppStoreState()
    state.apply(snapshot("us", "top-free", T0, {"6473753684": 8}))
    state.apply(snapshot("gb", "top-free", T0, {"6473753684": 4}))
    state.retain({"appstore/us/top-free", "claude/probe/api"})
    assert list(state.feeds) == [("us", "top-free")]
    assert {k[1] for k in state.history.series_keys()} == {"us"}
