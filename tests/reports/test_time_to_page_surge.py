"""The time-to-page bench's report surge is at least 5x the history's usual volume."""

from __future__ import annotations

from bench.fresh_install import history_rows
from bench.time_to_page import SURGE_MULTIPLE, USUAL_MEAN, surge_per_step
from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.detect.synthetic import EPOCH, WEEK_S, baseline_at


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.floats(min_value=EPOCH, max_value=EPOCH + 200 * WEEK_S))
def test_surge_is_five_times_the_usual_throughout_ten_minutes(now: float) -> None:
    usual, per_step = surge_per_step(now)
    assert usual > 0
    for second in range(0, 601, 30):
        assert per_step >= SURGE_MULTIPLE * baseline_at(now + second, USUAL_MEAN)


def test_surge_is_not_far_above_five_times() -> None:
    # A quiet hour (Sunday 04:00 UTC) and the weekday peak (15:00 UTC).
    for now in (EPOCH + 6 * 86400 + 4 * 3600, EPOCH + 2 * 86400 + 15 * 3600):
        usual, per_step = surge_per_step(now)
        assert per_step < SURGE_MULTIPLE * usual + 1
    assert surge_per_step(EPOCH + 6 * 86400 + 4 * 3600)[1] == 8


def test_shifted_users_meet_the_busy_hour_in_history_and_surge() -> None:
    # Sunday 06:00 UTC on the clock, Monday 15:00 for users 33 hours ahead.
    now = EPOCH + 6 * 86400 + 6 * 3600
    shift = 33 * 3600.0
    usual, per_step = surge_per_step(now, shift=shift)
    assert (usual, per_step) == surge_per_step(now + shift)
    assert usual > 12 and per_step >= 5 * usual
    # The imported history follows the same shifted week: its last hour is busy.
    rows = history_rows(["claude"], now, weeks=1, seed=3, shift=shift)
    last_hour = [t for t, _, _ in rows if t >= now - 3600]
    assert 10 * 12 < len(last_hour) < 14 * 12
    assert (
        len([t for t, _, _ in history_rows(["claude"], now, weeks=1, seed=3) if t >= now - 3600])
        < 4 * 12
    )
