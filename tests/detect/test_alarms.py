"""The detector's named tests, its alert state machine and its models, each on its own."""

from __future__ import annotations

import math

import pytest

from outagewatch.detect.alarms import (
    AlertMachine,
    CountScan,
    Cusum,
    DayResiduals,
    NoveltyTest,
    RangeTest,
    TailCalibration,
)
from outagewatch.detect.models import MODELS
from outagewatch.detect.settings import DAY, HOUR, DetectionSettings

S = DetectionSettings()
T0 = 1_700_000_000.0


def test_range_test_alarms_only_beyond_the_range_by_the_margin_with_z() -> None:
    test = RangeTest(S)
    test.hi, test.lo = 10.0, 0.0
    # Margin 2 % of the range (0.2); no time passed, so no decay toward the baseline.
    assert not test.test(10.1, 5.0, 0.0, 5.0, 1.0)
    assert test.test(10.3, 5.0, 0.0, 5.0, 1.0)
    assert not test.test(10.3, 5.0, 0.0, 4.0, 1.0)  # z under range_z_min (4.5)
    assert test.test(-0.3, 5.0, 0.0, -5.0, -1.0)  # downward, below the low end
    # After one half-life the range has come halfway to the baseline.
    test.test(5.0, 5.0, S.range_half_life_s, 0.0, 1.0)
    assert (test.hi, test.lo) == pytest.approx((7.5, 2.5))
    test.learn(12.0)
    assert test.hi == 12.0


def test_cusum_sums_capped_z_less_the_allowance_and_resets() -> None:
    up = Cusum(S, two_sided=False)
    sums = [up.test(z, 1.0, reset=False) for z in (3.0, 3.0, 10.0, -4.0)]
    # Increments min(z, 6) - 1: 2, 2, 5, then -5 floors at 0.
    assert sums == [2.0, 4.0, 9.0, 4.0]
    assert up.down == 0.0  # one-sided: no downward sum
    assert up.test(3.0, 1.0, reset=True) == 0.0
    both = Cusum(S, two_sided=True)
    assert [both.test(-4.0, -1.0, reset=False) for _ in range(3)] == [3.0, 6.0, 9.0]


def test_cusum_weight_discounts_autocorrelated_z() -> None:
    cusum = Cusum(S, two_sided=False)
    assert cusum.weight() == 1.0
    # A slow sine: z_t close to z_(t-1), rho capped at cusum_max_autocorr.
    for i in range(500):
        cusum.learn_autocorr(60.0, 2.0 * math.sin(i / 20.0), i + 1)
    rho = S.cusum_max_autocorr
    assert cusum.weight() == pytest.approx(math.sqrt((1 - rho) / (1 + rho)))
    # Alternating z: negative autocorrelation keeps weight 1.
    alternating = Cusum(S, two_sided=False)
    for i in range(500):
        alternating.learn_autocorr(60.0, (-1.0) ** i, i + 1)
    assert alternating.weight() == 1.0


def test_day_residuals_keep_the_day_and_gate_lone_points_by_the_margin() -> None:
    day = DayResiduals(S)
    assert day.top(T0, 1.0) is None
    day.learn(8.0)
    top = day.top(T0 + HOUR, 1.0)
    assert top == 8.0
    assert not day.point_counts(8.5, 1.0, top)  # within 10 % of the day's largest
    assert day.point_counts(8.9, 1.0, top)
    assert day.point_counts(8.5, 1.0, None)
    # A day later every slot has been cleared.
    assert day.top(T0 + HOUR + DAY, 1.0) is None
    day.learn(-7.0)
    assert day.top(T0 + HOUR + DAY, -1.0) == 7.0


def test_count_scan_finds_a_burst_of_moderate_counts_and_clears_while_not_idle() -> None:
    scan = CountScan(S)
    # Night-time: a baseline of 0.7 reports per 5 minutes, then 5, 5, 5.
    assert scan.test(T0, 5.0, 0.7, 0.05, 1.0, idle=True) == (0.0, 0.0)
    z2, total2 = scan.test(T0 + 300, 5.0, 0.7, 0.05, 1.0, idle=True)
    z3, total3 = scan.test(T0 + 600, 5.0, 0.7, 0.05, 1.0, idle=True)
    assert (total2, total3) == (10.0, 15.0)
    assert z2 < S.reports_scan_z < z3  # 10 against 1.4 is not yet an alarm, 15 against 2.1 is
    # A tail factor of 2 halves the z.
    halved = CountScan(S)
    for i in range(3):
        zh, _ = halved.test(T0 + 300 * i, 5.0, 0.7, 0.05, 2.0, idle=True)
    assert zh == pytest.approx(z3 / 2.0)
    assert scan.test(T0 + 900, 5.0, 0.7, 0.05, 1.0, idle=False) == (0.0, 0.0)
    assert scan.recent == []
    # Points older than the window drop out.
    scan.test(T0 + 2000, 5.0, 0.7, 0.05, 1.0, idle=True)
    assert scan.test(T0 + 2000 + S.reports_scan_window_s + 1, 1.0, 0.7, 0.05, 1.0, True)[1] == 0


def test_tail_calibration_leaves_poisson_like_streams_and_raises_wild_ones() -> None:
    tail = TailCalibration(S, far=False)
    assert tail.factor() == 1.0
    # A week with 100 peaks over 2, exponential excesses of mean 1 (variance 1):
    # 0.5 a week pass 2 + ln 200 = 7.3, so z is divided by 7.3 / 6.
    tail.time = 7 * DAY
    tail.peaks.count, tail.peaks.excess, tail.peaks.excess_sq = 100.0, 100.0, 200.0
    assert tail.factor() == pytest.approx((2.0 + math.log(200.0)) / S.z_alarm)
    # Rare peaks: the alarm level stays.
    tail.peaks.count, tail.peaks.excess, tail.peaks.excess_sq = 0.4, 0.4, 0.8
    assert tail.factor() == 1.0


def test_novelty_test_gates_a_lone_run_to_its_first_context() -> None:
    novelty = NoveltyTest(S)
    # No other test, no day residual to beat: the first novel point counts, the
    # next of the same run does not, a run the other way does.
    assert novelty.gate(True, False, 3.0, 1.0, None)
    assert not novelty.gate(True, False, 3.0, 1.0, None)
    assert novelty.gate(True, False, -3.0, -1.0, None)
    # Backed by another test, every novel point counts.
    assert novelty.gate(True, True, 3.0, 1.0, None)
    assert novelty.gate(True, True, 3.0, 1.0, None)
    # Alone and no taller than the day's largest residual: not news.
    novelty.gate(False, False, 0.0, 1.0, None)
    assert not novelty.gate(True, False, 3.0, 1.0, 3.5)


def test_novelty_test_finds_a_missing_swing_in_a_repeating_pattern() -> None:
    novelty = NoveltyTest(S)
    pattern = [0.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    for i in range(900):
        x = pattern[i % 6]
        _, distance = novelty.test(x, 3.0, 0.0, 1.0)
        novelty.learn(x, distance, normal=True)
    # The pattern again: nothing new; a flat 0 where the swing should rise: new.
    assert novelty.test(0.0, 3.0, 3.0, 1.0) == (False, 0.0)
    novel, distance = novelty.test(3.0, 3.0, 3.0, 1.0)
    assert novel and distance > 0.0
    # The same context with a calibrated z under novelty_z_min is not an alarm.
    assert novelty.test(3.0, 3.0, 1.0, 1.0)[0] is False


def test_alert_machine_alerts_holds_cools_down_and_lets_escalations_through() -> None:
    machine = AlertMachine(S, resumes=False)
    assert machine.cooldown(T0, 7.0, 1.0) == (False, False, False)
    assert machine.step(T0, 7.0, 1.0, alarm=True, resuming=False, may_alert=True)
    assert machine.active and machine.peak_z == 7.0
    machine.hold(9.0)
    assert machine.peak_z == 9.0
    # Held until z falls to z_exit.
    assert not machine.step(T0 + 300, 4.0, 1.0, alarm=False, resuming=False, may_alert=True)
    assert machine.active
    assert not machine.step(T0 + 600, 3.0, 1.0, alarm=False, resuming=False, may_alert=True)
    assert not machine.active
    # Inside the cooldown a repeat is blocked, an escalation past the peak is not.
    assert machine.cooldown(T0 + HOUR, 8.0, 1.0) == (True, False, True)
    assert machine.cooldown(T0 + HOUR, 9.5, 1.0) == (True, False, False)
    # Past the cooldown nothing is blocked.
    assert machine.cooldown(T0 + S.cooldown_s + 1, 7.0, 1.0) == (False, False, False)
    # An alarm the floors refuse does not alert.
    assert not machine.step(T0 + DAY + 1, 7.0, 1.0, alarm=True, resuming=False, may_alert=False)


def test_alert_machine_resumes_a_spike_soon_after_its_alert() -> None:
    machine = AlertMachine(S, resumes=True)
    machine.step(T0, -7.0, -1.0, alarm=True, resuming=False, may_alert=True)
    machine.step(T0 + 300, -2.0, -1.0, alarm=False, resuming=False, may_alert=True)
    assert not machine.active
    cooling, resuming, blocked = machine.cooldown(T0 + HOUR, -8.0, -1.0)
    assert cooling and resuming and blocked
    assert not machine.step(T0 + HOUR, -8.0, -1.0, alarm=True, resuming=True, may_alert=False)
    assert machine.active and machine.spike_start == T0
    # The other way, or after resume_s, it is not the same incident.
    assert machine.cooldown(T0 + HOUR, 8.0, 1.0)[1] is False
    assert machine.cooldown(T0 + S.resume_s + 1, -8.0, -1.0)[1] is False


def test_models_scale_units_and_floors() -> None:
    reports, latency, ratio, rank, generic = (
        MODELS[k] for k in ("reports", "latency", "failure_ratio", "rank", "generic")
    )
    # Counts: negative-binomial spread, never below one report.
    assert reports.scale(S, 99.0, 100.0, 0.05) == pytest.approx(math.sqrt(100 + 0.05 * 1e4))
    assert reports.scale(S, 99.0, 0.1, 0.05) == 1.0
    assert latency.scale(S, 0.001, 0.3, 0.0) == S.latency_min_scale_s
    assert ratio.scale(S, 0.0, 0.0, 0.0) == S.failure_ratio_min_scale
    assert generic.scale(S, 0.0, 500.0, 0.0) == 5.0  # 1 % of the baseline
    assert rank.untransform(rank.transform(40.0)) == pytest.approx(40.0)
    assert rank.transform(0.5) == 0.0  # ranks below 1 count as the top
    assert not reports.worth_alerting(S, 4.0, 0.5, 4.0)  # fewer than 5 reports
    assert not reports.worth_alerting(S, 12.0, 10.0, 12.0)  # under 1.5x the baseline
    assert reports.worth_alerting(S, 16.0, 10.0, 16.0)
    assert not ratio.worth_alerting(S, 0.05, 0.0, 0.05)
    assert reports.shift_windows(S) == S.reports_shift_windows_s
    assert generic.shift_windows(S) == S.shift_windows_s
    assert [m.two_sided for m in MODELS.values()] == [False, False, False, False, True]
