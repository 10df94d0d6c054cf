"""The report baseline on a fixed clock with synthetic weeks of history."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry

from outagewatch.clock import FakeClock
from outagewatch.config import parse_config
from outagewatch.lenses.reports import ReportsCollector
from outagewatch.lenses.reports.baseline import HOUR, WEEK_HOURS, ReportsState, expected_per_5m
from outagewatch.observations import Report
from outagewatch.pipeline import Pipeline
from outagewatch.store import Store

# Tuesday 14:30 UTC.
NOW = datetime(2026, 11, 24, 14, 30, tzinfo=UTC).timestamp()
HOUR_NOW = int(NOW // HOUR)
WEEK = WEEK_HOURS * HOUR


def test_median_of_the_same_hour_over_past_weeks_ignores_one_spike() -> None:
    # Tuesdays 14:00-15:00 of the last four weeks: 24, 36, 1200 (an outage), 48 reports.
    hourly = {
        HOUR_NOW - k * WEEK_HOURS: n for k, n in zip((1, 2, 3, 4), (24, 36, 1200, 48), strict=True)
    }
    hourly[HOUR_NOW - 1] = 5000  # an hour ago: not the same slot, not read
    baseline = expected_per_5m(hourly, NOW, NOW - 10 * WEEK, weeks=4, min_weeks=2)
    assert baseline == (36 + 48) / 2 / 12


def test_a_covered_hour_without_reports_is_a_zero() -> None:
    hourly = {HOUR_NOW - WEEK_HOURS: 120}
    assert expected_per_5m(hourly, NOW, NOW - 10 * WEEK, weeks=3, min_weeks=2) == 0.0


def test_recent_level_stands_in_while_history_is_short() -> None:
    # Three days of history: no same hour last week. The last day's median hour counts,
    # so an outage two hours ago (600) does not lift it.
    hourly = {HOUR_NOW - k: 24 for k in range(1, 72)}
    hourly[HOUR_NOW - 2] = 600
    baseline = expected_per_5m(hourly, NOW, NOW - 3 * 86400, weeks=4, min_weeks=2)
    assert baseline == 24 / 12


def test_weeks_before_history_began_are_not_counted_as_zeros() -> None:
    # History began 2.5 weeks ago: two same-slot weeks (60, 84), not four with two zeros.
    hourly = {HOUR_NOW - WEEK_HOURS: 60, HOUR_NOW - 2 * WEEK_HOURS: 84}
    baseline = expected_per_5m(hourly, NOW, NOW - 2.5 * WEEK, weeks=4, min_weeks=2)
    assert baseline == 72 / 12


def test_no_history_means_no_expected_reports() -> None:
    assert expected_per_5m({}, NOW, NOW, weeks=4, min_weeks=2) == 0.0


def test_counts_past_the_baseline_horizon_are_forgotten() -> None:
    state = ReportsState(weeks=2)
    counts = state.counts("claude")
    counts.add(NOW - 3 * WEEK)
    counts.add(NOW - 2 * WEEK)
    counts.add(NOW - 20)
    state.roll(NOW)
    assert sorted(counts.hourly) == [HOUR_NOW - 2 * WEEK_HOURS, HOUR_NOW]
    assert counts.last_5m(NOW) == 1


def synthetic_history() -> list[Report]:
    """Five weeks: 12 reports in every hour, 24 in Tuesday 14:00, one week an outage."""
    reports = []
    for hour in range(HOUR_NOW - 5 * WEEK_HOURS, HOUR_NOW):
        same_slot = (HOUR_NOW - hour) % WEEK_HOURS == 0
        count = 12
        if same_slot:
            count = 1200 if hour == HOUR_NOW - 2 * WEEK_HOURS else 24
        reports.extend(
            Report("claude", "app", hour * HOUR + i * HOUR / count, channel="import")
            for i in range(count)
        )
    return reports


async def test_baseline_from_the_store_at_start_up_and_live_reports(tmp_path: Path) -> None:
    clock = FakeClock(NOW - 6 * WEEK)
    store = Store(tmp_path / "o.db", clock)
    store.open()
    try:
        await store.import_reports(synthetic_history())
        clock.now = NOW
        config = parse_config({"services": {"claude": {}, "gemini": {}}})
        pipeline = Pipeline(clock)
        await pipeline.start_reports(store, config)
        registry = CollectorRegistry()
        registry.register(ReportsCollector(pipeline.reports, clock, store))

        def sample(name: str, service: str = "claude") -> float | None:
            return registry.get_sample_value(name, {"service": service})

        # Median of 24, 24, 1200, 24 reports in that hour: 24 per hour, 2 per 5 minutes.
        assert sample("outagewatch_reports_baseline_per_5m") == 2.0
        assert sample("outagewatch_reports_last_5m") == 0
        # A configured service without reports still has its gauges (floor 1 per 5m).
        assert sample("outagewatch_reports_baseline_per_5m", "gemini") == 0.0
        assert sample("outagewatch_reports_ratio_to_baseline", "gemini") == 0.0

        live = [Report("claude", "login", NOW + i, reporter=f"r{i}") for i in range(30)]
        await pipeline.submit_reports(live, 3600)
        clock.advance(30)
        assert sample("outagewatch_reports_last_5m") == 30
        assert sample("outagewatch_reports_ratio_to_baseline") == 15.0
        assert (
            registry.get_sample_value(
                "outagewatch_reports_total", {"service": "claude", "problem": "login"}
            )
            == 30
        )
        clock.advance(300)
        assert sample("outagewatch_reports_last_5m") == 0
    finally:
        store.close()
