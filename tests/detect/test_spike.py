"""Behaviour of the spike detectors on hand-made and synthetic series."""

from __future__ import annotations

import io
import json
import math
import random

import pytest
from pydantic import ValidationError

from outagewatch.detect import DetectionSettings, SpikeDetector, SpikeVerdict, detector_for
from outagewatch.detect.backtest import backtest_main, parse_timestamp, read_series, run_backtest
from outagewatch.detect.synthetic import baseline_at, simulate

STEP = 300.0
T0 = 1_704_067_200.0
HOUR = 3600.0


def steady_counts(n: int, mean: float, seed: int) -> list[tuple[float, float]]:
    """Poisson-ish counts around a flat mean, 5 minutes apart."""
    rng = random.Random(seed)
    return [
        (T0 + i * STEP, float(max(0, round(rng.gauss(mean, math.sqrt(mean)))))) for i in range(n)
    ]


def test_settings_are_frozen_and_reject_unknown_keys() -> None:
    settings = DetectionSettings()
    with pytest.raises(ValidationError):
        DetectionSettings(z_alram=3.0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        settings.z_alarm = 1.0  # type: ignore[misc]


def test_unknown_signal_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        detector_for("tweets", DetectionSettings())


def test_large_report_burst_starts_one_spike_on_its_first_point() -> None:
    det = detector_for("reports", DetectionSettings())
    for ts, v in steady_counts(600, 20.0, seed=1):
        assert not det.update(ts, v).active
    ts = T0 + 600 * STEP
    verdict = det.update(ts, 200.0)
    assert verdict == SpikeVerdict(verdict.score, True, verdict.baseline, True)
    assert verdict.score > 0.5 and 15.0 < verdict.baseline < 25.0
    again = det.update(ts + STEP, 210.0)
    assert again.active and not again.started


def test_a_few_reports_on_a_silent_service_do_not_alert() -> None:
    det = detector_for("reports", DetectionSettings())
    for i in range(600):
        det.update(T0 + i * STEP, 0.0)
    verdict = det.update(T0 + 600 * STEP, 2.0)
    assert not verdict.active


def test_no_alert_during_warmup() -> None:
    det = detector_for("reports", DetectionSettings())
    verdicts = [det.update(T0 + i * STEP, 10.0 if i < 10 else 500.0) for i in range(12)]
    assert not any(v.active for v in verdicts)


def test_drop_in_reports_is_not_a_spike() -> None:
    det = detector_for("reports", DetectionSettings())
    for ts, v in steady_counts(600, 50.0, seed=2):
        det.update(ts, v)
    assert not any(det.update(T0 + (600 + i) * STEP, 0.0).active for i in range(24))


def test_cooldown_suppresses_a_second_spike_right_after_the_first() -> None:
    settings = DetectionSettings()
    det = detector_for("reports", settings)
    for ts, v in steady_counts(600, 20.0, seed=3):
        det.update(ts, v)
    t = T0 + 600 * STEP
    assert det.update(t, 300.0).started
    det.update(t + STEP, 20.0)
    assert not det.update(t + 2 * STEP, 20.0).active
    assert not det.update(t + 3 * STEP, 300.0).started
    later = t + 3 * STEP + settings.cooldown_s
    for i in range(1, 6):
        det.update(later + i * STEP, 20.0)
    assert det.update(later + 6 * STEP, 300.0).started


def test_latency_jump_alerts_and_a_latency_dip_does_not() -> None:
    rng = random.Random(4)
    det = detector_for("latency", DetectionSettings())
    for i in range(600):
        det.update(T0 + i * 60, 0.8 + rng.gauss(0, 0.05))
    assert not det.update(T0 + 600 * 60, 0.2).active
    assert det.update(T0 + 601 * 60, 4.0).started


def test_failure_ratio_below_the_minimum_is_not_a_spike() -> None:
    det = detector_for("failure_ratio", DetectionSettings())
    for i in range(600):
        det.update(T0 + i * 60, 0.0)
    assert not det.update(T0 + 600 * 60, 0.05).active
    assert det.update(T0 + 601 * 60, 0.6).started


def test_rank_climb_into_the_top_ten_is_a_spike_and_a_fall_is_not() -> None:
    rng = random.Random(5)
    det = detector_for("rank", DetectionSettings())
    for i in range(300):
        det.update(T0 + i * 900, float(rng.randint(140, 160)))
    fall = det.update(T0 + 300 * 900, 400.0)
    assert not fall.active
    climb = det.update(T0 + 301 * 900, 8.0)
    assert climb.started and climb.baseline > 100


def test_irregular_spacing_and_out_of_order_points_are_handled() -> None:
    det = detector_for("latency", DetectionSettings())
    rng = random.Random(6)
    ts = T0
    for _ in range(400):
        ts += rng.choice([30.0, 60.0, 600.0, 3600.0])
        det.update(ts, 1.0 + rng.gauss(0, 0.1))
    before = det.to_state()
    stale = det.update(ts - 10.0, 100.0)
    assert not stale.active and det.to_state() == before
    assert det.update(ts + 60.0, math.nan) == stale


def test_restored_detector_continues_exactly_like_an_uninterrupted_one() -> None:
    settings = DetectionSettings()
    rows = simulate(3, 20.0, seed=7, outages_from_s=7 * 86400.0).rows
    whole = detector_for("reports", settings)
    expected = [whole.update(ts, v) for ts, v in rows]
    half = len(rows) // 2
    first = detector_for("reports", settings)
    got = [first.update(ts, v) for ts, v in rows[:half]]
    state = json.loads(json.dumps(first.to_state(), allow_nan=False))
    restored = SpikeDetector.from_state(state, settings)
    got += [restored.update(ts, v) for ts, v in rows[half:]]
    assert got == expected
    assert any(v.started for v in expected)


def test_state_of_a_fresh_rank_detector_is_json_safe() -> None:
    det = detector_for("rank", DetectionSettings())
    state = json.loads(json.dumps(det.to_state(), allow_nan=False))
    assert SpikeDetector.from_state(state, DetectionSettings()).to_state() == det.to_state()


def test_backtest_reads_nab_and_unix_timestamps_as_utc() -> None:
    assert parse_timestamp("2014-04-01 00:05:00") == 1396310700.0
    assert parse_timestamp("1396310700") == 1396310700.0
    rows = read_series(io.StringIO("timestamp,value\n2014-04-01 00:00:00,1.5\n"))
    assert rows == [("2014-04-01 00:00:00", 1396310400.0, 1.5)]


def test_backtest_writes_one_row_per_input_keeping_timestamp_text(tmp_path: object) -> None:
    path = f"{tmp_path}/in.csv"
    rows = [*steady_counts(300, 20.0, seed=8), (T0 + 300 * STEP, 400.0)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("timestamp,value\n")
        f.writelines(f"{int(ts)},{v}\n" for ts, v in rows)
    out = io.StringIO()
    assert backtest_main("reports", path, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "timestamp,value,score,alert"
    assert len(lines) == len(rows) + 1
    assert lines[-1].startswith(f"{int(T0 + 300 * STEP)},400.0,") and lines[-1].endswith(",1")
    results = list(run_backtest("reports", rows, DetectionSettings()))
    assert [r[3] for r in results] == [int(line.rsplit(",", 1)[1]) for line in lines[1:]]


def test_backtest_reports_a_bad_file_with_exit_code_1() -> None:
    assert backtest_main("reports", "/nonexistent/file.csv", io.StringIO()) == 1


def test_generic_signal_is_two_sided() -> None:
    rng = random.Random(9)
    det = detector_for("generic", DetectionSettings())
    for i in range(600):
        det.update(T0 + i * 60, 50.0 + rng.gauss(0, 1.0))
    drop = det.update(T0 + 600 * 60, 10.0)
    assert drop.started and drop.baseline > 45


def alert_then_settle(det: SpikeDetector) -> float:
    """Warm a report detector on 20 a point, alert on 150, settle 5 points; the alert's time."""
    for ts, v in steady_counts(600, 20.0, seed=10):
        det.update(ts, v)
    t = T0 + 600 * STEP
    assert det.update(t, 150.0).started
    for i in range(1, 6):
        det.update(t + i * STEP, 20.0)
    return t


def test_escalation_beyond_the_alerted_peak_alerts_inside_the_cooldown() -> None:
    det = detector_for("reports", DetectionSettings())
    t = alert_then_settle(det)
    assert not det.update(t + 6 * STEP, 120.0).started
    for i in range(7, 12):
        det.update(t + i * STEP, 20.0)
    assert det.update(t + 12 * STEP, 600.0).started


def test_a_night_outage_escalates_past_a_daytime_alert_with_a_higher_raw_peak() -> None:
    # Escalation is measured in calibrated z against the baseline of its own
    # time: 80 reports against a night baseline near 7 go further beyond it
    # than the 100 of an afternoon alert against about 24, though 80 < 100.
    rng = random.Random(21)
    det = detector_for("reports", DetectionSettings())
    day = T0 + 7 * 86400.0
    for i in range(int((7 * 86400 + 15 * HOUR) / STEP)):
        ts = T0 + i * STEP
        lam = baseline_at(ts, 20.0)
        det.update(ts, float(max(0, round(rng.gauss(lam, math.sqrt(lam))))))
    assert det.update(day + 15 * HOUR, 100.0).started
    for i in range(1, 12 * 12):
        ts = day + 15 * HOUR + i * STEP
        lam = baseline_at(ts, 20.0)
        det.update(ts, float(max(0, round(rng.gauss(lam, math.sqrt(lam))))))
    night = det.update(day + 27 * HOUR, 80.0)
    assert night.started and night.baseline < 10.0


def test_a_repeat_the_cooldown_suppresses_does_not_teach_the_tail() -> None:
    # No last-day gate on lone points, so that the repeat below the peak alarms.
    det = detector_for("reports", DetectionSettings(point_range_margin=0))
    t = alert_then_settle(det)
    before = (det.tail.peaks.count, det.tail.peaks.excess, det.tail.time)
    repeat = det.update(t + 6 * STEP, 120.0)
    assert not repeat.started and not repeat.active
    assert (det.tail.peaks.count, det.tail.peaks.excess, det.tail.time) == before


def test_a_stream_with_wild_ordinary_bursts_raises_its_own_alarm_level() -> None:
    rng = random.Random(12)
    settings = DetectionSettings()
    calm = detector_for("reports", settings)
    wild = detector_for("reports", settings)
    for i in range(4000):
        ts = T0 + i * STEP
        calm.update(ts, float(max(0, round(rng.gauss(20.0, math.sqrt(20.0))))))
        burst = 20.0 * math.exp(rng.expovariate(1.0)) if rng.random() < 0.02 else 20.0
        wild.update(ts, float(max(0, round(rng.gauss(burst, math.sqrt(burst))))))
    assert calm.tail.factor() == 1.0
    assert wild.tail.factor() > 1.5


def test_backtest_alert_column_is_the_onset_not_the_held_state() -> None:
    rows = [*steady_counts(300, 20.0, seed=13)]
    rows += [(T0 + (300 + i) * STEP, 400.0) for i in range(3)]
    results = list(run_backtest("reports", rows, DetectionSettings()))
    assert [r[3] for r in results[-3:]] == [1, 0, 0]
    det = detector_for("reports", DetectionSettings())
    verdicts = [det.update(ts, v) for ts, v in rows]
    assert all(v.active for v in verdicts[-3:])
    assert [int(v.started) for v in verdicts] == [r[3] for r in results]


def test_generic_detector_state_round_trips() -> None:
    settings = DetectionSettings()
    rng = random.Random(14)
    rows = [
        (T0 + i * 300.0, 5.0 + rng.gauss(0, 1) + (30 if i % 997 == 0 else 0)) for i in range(3000)
    ]
    whole = detector_for("generic", settings)
    expected = [whole.update(ts, v) for ts, v in rows]
    first = detector_for("generic", settings)
    got = [first.update(ts, v) for ts, v in rows[:1500]]
    state = json.loads(json.dumps(first.to_state(), allow_nan=False))
    restored = SpikeDetector.from_state(state, settings)
    got += [restored.update(ts, v) for ts, v in rows[1500:]]
    assert got == expected


def test_cusum_discounts_autocorrelated_wander_but_not_independent_noise() -> None:
    settings = DetectionSettings()
    rng = random.Random(15)
    white = detector_for("generic", settings)
    smooth = detector_for("generic", settings)
    level = 0.0
    for i in range(3000):
        ts = T0 + i * STEP
        level = 0.95 * level + rng.gauss(0, 1.0)
        white.update(ts, 20.0 + rng.gauss(0, 1.0))
        smooth.update(ts, 20.0 + level)
    assert white.cusum.weight() > 0.9
    rho = settings.cusum_max_autocorr
    assert smooth.cusum.weight() == pytest.approx(math.sqrt((1 - rho) / (1 + rho)))


def _latency_repeat(settings: DetectionSettings) -> list[bool]:
    """Two equal latency jumps 3 h apart on a steady stream; which of them alert."""
    rng = random.Random(5)
    det = detector_for("latency", settings)
    alerts = []
    for i in range(800):
        ts = T0 + i * STEP
        value = 1.0 + rng.gauss(0.0, 0.01)
        if i in (700, 736):
            value = 2.0
        started = det.update(ts, value).started
        if i in (700, 736):
            alerts.append(started)
    return alerts


def test_a_lone_point_alarm_must_beat_the_last_days_largest_residual() -> None:
    # The second jump is no taller than one 3 h earlier: no CUSUM, range break
    # or scan backs it, so it is the same kind of event, not news.
    assert _latency_repeat(DetectionSettings(cooldown_s=HOUR)) == [True, False]
    off = DetectionSettings(cooldown_s=HOUR, point_range_margin=0.0)
    assert _latency_repeat(off) == [True, True]


def test_state_without_the_residual_window_still_restores() -> None:
    settings = DetectionSettings()
    det = detector_for("reports", settings)
    for ts, v in steady_counts(400, 20.0, seed=3):
        det.update(ts, v)
    state = det.to_state()
    for key in ("resid_hi", "resid_lo", "resid_slot"):
        del state[key]
    # The declustered tail was dropped (issue 19): an older state's keys are ignored.
    assert "tail_last" not in state
    state["tail_last"], state["tail_cluster"] = T0, 1.5
    # Issue 7nab5's pending lone alarm is no longer kept: its keys are ignored.
    state["pending_ts"], state["pending_count"] = T0, 150.0
    # Before issue 7nab13 the alerted peak was a raw value: ignored, the peak is 0.
    del state["alert_peak_z"]
    state["alert_peak"] = 150.0
    restored = SpikeDetector.from_state(state, settings)
    assert restored.alerts.peak_z == 0.0
    assert restored.update(T0 + 400 * STEP, 20.0).started is False


def _bursty_counts(n: int, seed: int) -> list[tuple[float, float]]:
    """Counts around 20 with a 2 % chance per point of a burst several times taller."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        burst = 20.0 * math.exp(rng.expovariate(1.0)) if rng.random() < 0.02 else 20.0
        rows.append((T0 + i * STEP, float(max(0, round(rng.gauss(burst, math.sqrt(burst)))))))
    return rows


def _lone_burst(settings: DetectionSettings, follow: list[float], top: float = 150.0) -> list[bool]:
    """Alerts on a burst of `top` after a bursty history, and on the points after it."""
    det = detector_for("reports", settings)
    for ts, v in _bursty_counts(4000, seed=12):
        det.update(ts, v)
    assert det.tail.factor() >= settings.reports_confirm_tail
    t = T0 + 4000 * STEP
    return [det.update(t + i * STEP, v).started for i, v in enumerate([top, *follow])]


def test_on_a_bursty_stream_a_point_alarm_needs_another_test() -> None:
    settings = DetectionSettings()
    # One 5-minute burst is this stream's ordinary noise; a burst that lasts is
    # not, and the count scan over its points sees it.
    assert _lone_burst(settings, follow=[20.0, 20.0]) == [False, False, False]
    assert _lone_burst(settings, follow=[150.0, 150.0]) == [False, False, True]
    # A burst beyond anything seen lately is a range break: no wait.
    assert _lone_burst(settings, follow=[20.0], top=400.0) == [True, False]
    off = DetectionSettings(reports_confirm_tail=0.0)
    assert _lone_burst(off, follow=[20.0]) == [True, False]


def _warm_generic(settings: DetectionSettings, rng: random.Random) -> SpikeDetector:
    """A `generic` detector after 600 quiet points around 50."""
    det = detector_for("generic", settings)
    for i in range(600):
        det.update(T0 + i * STEP, 50.0 + rng.gauss(0, 1.0))
    return det


def test_generic_escalation_soon_after_the_alert_resumes_the_spike() -> None:
    # On `generic`, an alarm the same way within resume_s of the alert is the
    # same incident: the spike is held again, not alerted. Later, inside the
    # cooldown, an escalation still alerts. (No last-day gate on lone points,
    # so that a repeat below the peak alarms.)
    rng = random.Random(14)
    det = _warm_generic(DetectionSettings(point_range_margin=0), rng)
    t = T0 + 600 * STEP
    assert det.update(t, 80.0).started
    for i in range(1, 6):
        assert not det.update(t + i * STEP, 50.0 + rng.gauss(0, 1.0)).active
    resumed = det.update(t + 6 * STEP, 90.0)
    assert resumed.active and not resumed.started
    for i in range(7, 12):
        assert not det.update(t + i * STEP, 50.0 + rng.gauss(0, 1.0)).active
    # A repeat below the peak is held too, so it does not teach the tail.
    repeat = det.update(t + 12 * STEP, 78.0)
    assert repeat.active and not repeat.started
    for i in range(13, 36):
        det.update(t + i * STEP, 50.0 + rng.gauss(0, 1.0))
    assert det.update(t + 36 * STEP, 100.0).started


def test_resume_off_lets_generic_escalate_at_once() -> None:
    rng = random.Random(14)
    det = _warm_generic(DetectionSettings(resume_s=0), rng)
    t = T0 + 600 * STEP
    assert det.update(t, 80.0).started
    for i in range(1, 6):
        det.update(t + i * STEP, 50.0 + rng.gauss(0, 1.0))
    assert det.update(t + 6 * STEP, 90.0).started


def _tail_with_heavy_far_end(settings: DetectionSettings) -> SpikeDetector:
    """A week of peaks: 100 small ones over tail_u, 20 far ones over tail_u_high."""
    det = detector_for("reports", settings)
    det.tail.time = 7 * 86400.0
    # Exponential excesses of mean 0.5 over 2: 0.5 a week pass 2 + 0.5 ln 200 = 4.6.
    det.tail.peaks.count, det.tail.peaks.excess, det.tail.peaks.excess_sq = 100.0, 50.0, 50.0
    # Exponential excesses of mean 3 over 4: 0.5 a week pass 4 + 3 ln 40 = 15.1.
    high = det.tail.peaks_high
    high.count, high.excess, high.excess_sq = 20.0, 60.0, 360.0
    return det


def test_a_heavy_far_tail_behind_a_light_body_raises_the_alarm_level() -> None:
    # Over tail_u the near-Gaussian body leads the fit; over the higher
    # threshold the far tail shows, and the higher level counts.
    assert _tail_with_heavy_far_end(DetectionSettings()).tail.factor() == pytest.approx(
        (4.0 + 3.0 * math.log(40.0)) / 6.0
    )
    off = DetectionSettings(tail_u_high=0.0)
    assert _tail_with_heavy_far_end(off).tail.factor() == 1.0
    # Generic series keep the single threshold.
    generic = detector_for("generic", DetectionSettings())
    assert generic.tail.far is False


def test_state_without_the_high_tail_still_restores() -> None:
    settings = DetectionSettings()
    det = detector_for("reports", settings)
    for ts, v in _bursty_counts(3000, seed=4):
        det.update(ts, v)
    state = json.loads(json.dumps(det.to_state(), allow_nan=False))
    assert state["tail_hi_count"] > 0
    for key in [k for k in state if k.startswith("tail_hi_")]:
        del state[key]
    restored = SpikeDetector.from_state(state, settings)
    assert restored.tail.peaks_high.count == 0.0
    assert restored.update(T0 + 3000 * STEP, 20.0).started is False
