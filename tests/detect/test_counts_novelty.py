"""Exact count tails, the short count scan, contextual novelty and level shifts."""

from __future__ import annotations

import json
import math
import random

import pytest

from outagewatch.detect import DetectionSettings, SpikeDetector, detector_for
from outagewatch.detect.counts import betainc, count_z, nb_upper_tail, tail_z
from outagewatch.detect.novelty import ContextNovelty
from outagewatch.detect.shift import LevelShift
from outagewatch.detect.synthetic import baseline_at, overdispersed_count

T0 = 1_704_067_200.0


def brute_upper_tail(k: int, mean: float, phi: float) -> float:
    """1 - sum of negative-binomial pmf terms below k."""
    r = 1.0 / phi
    p = r / (r + mean)
    below = sum(
        math.exp(
            math.lgamma(j + r)
            - math.lgamma(r)
            - math.lgamma(j + 1)
            + r * math.log(p)
            + j * math.log1p(-p)
        )
        for j in range(k)
    )
    return 1.0 - below


@pytest.mark.parametrize(
    ("k", "mean", "phi"),
    [(4, 0.77, 0.2), (8, 1.0, 0.2), (30, 5.0, 0.05), (200, 100.0, 0.2), (1500, 500.0, 0.2)],
)
def test_negative_binomial_tail_matches_a_sum_of_pmf_terms(k: int, mean: float, phi: float) -> None:
    assert nb_upper_tail(k, mean, phi) == pytest.approx(brute_upper_tail(k, mean, phi), rel=1e-6)


def test_incomplete_beta_edges_and_symmetry() -> None:
    assert betainc(2.0, 3.0, 0.0) == 0.0
    assert betainc(2.0, 3.0, 1.0) == 1.0
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(1.0 - betainc(3.0, 2.0, 0.6), abs=1e-12)


def test_count_z_is_a_normal_quantile_and_grows_with_the_count() -> None:
    assert tail_z(0.5) == pytest.approx(0.0, abs=1e-12)
    assert tail_z(0.02275) == pytest.approx(2.0, abs=1e-3)
    zs = [count_z(float(k), 1.0, 0.2) for k in range(2, 20)]
    assert zs == sorted(zs) and zs[-1] > 6.0
    assert count_z(0.0, 1.0, 0.2) <= 0.0
    # Skewed small counts: 4 reports against 0.77 is a 1-in-70 event, not a z of 3.2.
    assert 2.0 < count_z(4.0, 0.77, 0.2) < 2.5


def run_counts(settings: DetectionSettings, burst: list[float]) -> list[bool]:
    """Alerts on `burst` after 3000 points of gamma-Poisson counts around 3."""
    rng = random.Random(3)
    det = detector_for("reports", settings)
    ts = T0
    for _ in range(3000):
        det.update(ts, float(overdispersed_count(rng, 3.0, 5.0)))
        ts += 300.0
    return [det.update(ts + 300.0 * i, v).started for i, v in enumerate(burst)]


def test_two_points_that_are_each_unremarkable_alert_through_the_scan() -> None:
    settings = DetectionSettings()
    assert run_counts(settings, [16.0, 16.0, 16.0]) == [False, True, False]
    off = settings.model_copy(update={"reports_scan_z": 0.0})
    assert run_counts(off, [16.0, 16.0, 16.0]) == [False, False, False]


def test_context_novelty_flags_a_new_shape_not_a_repeated_one() -> None:
    nov = ContextNovelty(k=4, window=200, history=100, floor=0.01)
    rng = random.Random(5)
    for i in range(400):
        value = math.sin(i / 10.0) + rng.gauss(0, 0.02)
        _, dist = nov.ratio(value, 2.0)
        nov.learn(value, dist, normal=True)
    repeat, _ = nov.ratio(math.sin(400 / 10.0), 2.0)
    new, _ = nov.ratio(-1.8, 2.0)
    assert repeat < 1.0 < new


def test_generic_detector_alerts_on_a_pattern_break_inside_the_seen_range() -> None:
    rng = random.Random(8)
    det = detector_for("generic", DetectionSettings())
    rows = [
        (T0 + i * 300.0, 10.0 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.3))
        for i in range(2000)
    ]
    for ts, v in rows:
        det.update(ts, v)
    # A flat stretch at the mean where the series should swing: within the range, not a spike.
    got = [det.update(T0 + (2000 + i) * 300.0, 0.0) for i in range(60)]
    assert any(v.started for v in got)


def _burst_shape_alerts(settings: DetectionSettings, seed: int) -> list[tuple[int, int]]:
    """Five-minute series near 30 with a burst to 100 every 8 h; from day 9 each burst starts at 72.

    Returns (day, point of the burst) of every alert.
    """
    rng = random.Random(seed)
    det = detector_for("generic", settings)
    alerts = []
    for i in range(12 * 288):
        day, phase = i // 288, i % 96
        shape = (72.0, 100.0, 100.0) if day >= 9 else (100.0, 100.0)
        value = shape[phase] if phase < len(shape) else 30.0 + rng.gauss(0.0, 1.0)
        if det.update(T0 + i * 300.0, value).started:
            alerts.append((day, phase))
    return alerts


@pytest.mark.parametrize("seed", [1, 2])
def test_a_new_burst_shape_no_taller_than_the_days_bursts_does_not_alert(seed: int) -> None:
    # The first point at 72 is a context never seen, but no farther from the
    # baseline than the bursts of the last day; the next contexts carry the
    # same novel value, so they are the same run, not new news.
    gated = _burst_shape_alerts(DetectionSettings(), seed)
    assert not any(day >= 9 for day, _ in gated)
    ungated = _burst_shape_alerts(DetectionSettings(novelty_lone_gate=False), seed)
    assert (9, 0) in ungated


def test_state_with_scan_and_novelty_round_trips_as_json() -> None:
    settings = DetectionSettings()
    for signal in ("reports", "generic"):
        det = detector_for(signal, settings)
        rng = random.Random(9)
        for i in range(700):
            det.update(T0 + i * 300.0, float(rng.randint(0, 3)))
        state = json.loads(json.dumps(det.to_state(), allow_nan=False))
        assert state["version"] == 4
        assert SpikeDetector.from_state(state, settings).to_state() == det.to_state()


def _holiday_alerts(settings: DetectionSettings, seed: int) -> list[int]:
    """Half-hourly series with a daily cycle; day 20 runs 8 lower with half the swing."""
    rng = random.Random(seed)
    det = detector_for("generic", settings)
    noise = 0.0
    alerts = []
    for i in range(24 * 48):
        ts = T0 + i * 1800.0
        noise = 0.8 * noise + rng.gauss(0.0, 1.0)
        day = 10.0 * math.sin(2 * math.pi * (ts % 86400) / 86400)
        k = i - 20 * 48
        value = 50.0 + day + noise
        if 0 <= k < 48:
            value = 42.0 + 0.5 * day + noise
        if det.update(ts, value).started:
            alerts.append(k)
    return alerts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_day_long_level_shift_alerts_where_no_point_test_does(seed: int) -> None:
    # Each point of the low day is ordinary against the fast baseline, which
    # follows it; the mean of the last hours against the slow one is not.
    caught = _holiday_alerts(DetectionSettings(), seed)
    assert caught and all(0 <= k < 48 for k in caught)
    assert _holiday_alerts(DetectionSettings(shift_z=0), seed) == []


def test_level_shift_standardises_window_means_and_round_trips() -> None:
    shift = LevelShift((6 * 3600.0, 86400.0), cap=4.0)
    rng = random.Random(3)
    ts = T0
    for _ in range(4 * 288):
        ts += 300.0
        shift.observe(ts, rng.gauss(0.0, 1.0))
        shift.learn(0.999)
    # Noise means over 6 h (72 points) have a spread near 1/sqrt(72).
    assert math.sqrt(shift.mean_sq[0]) == pytest.approx(1 / math.sqrt(72), rel=0.5)
    copy = LevelShift((6 * 3600.0, 86400.0), cap=4.0)
    copy.load_state(json.loads(json.dumps(shift.to_state())))
    z = [shift.observe(ts + k * 300.0, -1.0) for k in range(1, 73)]
    assert z == [copy.observe(ts + k * 300.0, -1.0) for k in range(1, 73)]
    # Six hours one noise-sd low: far beyond the spread of 6-hour means.
    assert z[-1] < -6.0


def _slide_first_alert(settings: DetectionSettings, seed: int) -> int | None:
    """Five-minute smooth series (AR(1) noise, daily cycle) sliding 20 lower over 12 h on day 8.

    Returns the first alert's point index from the slide's start (None if none).
    """
    rng = random.Random(seed)
    det = detector_for("generic", settings)
    noise = 0.0
    for i in range(9 * 288):
        ts = T0 + i * 300.0
        noise = 0.9 * noise + rng.gauss(0.0, 1.0)
        day = 5.0 * math.sin(2 * math.pi * (ts % 86400) / 86400)
        k = i - 8 * 288
        drop = 20.0 * min(1.0, k / 144) if k >= 0 else 0.0
        if det.update(ts, 50.0 + day + noise - drop).started and k >= 0:
            return k
    return None


def test_a_slow_slide_is_caught_earlier_when_the_baseline_holds() -> None:
    # The fast drift and the seasonal slots follow a slow slide, so every point
    # stays ordinary against them; once the last hours depart from the slow
    # baseline (|shift z| >= shift_hold_z) they hold and the slide shows.
    seeds = range(1, 7)
    held = [_slide_first_alert(DetectionSettings(), seed) for seed in seeds]
    followed = [_slide_first_alert(DetectionSettings(shift_hold_z=0), seed) for seed in seeds]
    assert None not in held and None not in followed
    # On average more than an hour (12 points) earlier.
    assert sum(h or 0 for h in held) + 12 * len(seeds) < sum(f or 0 for f in followed)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_lasting_step_alerts_once_a_day_not_in_a_storm(seed: int) -> None:
    # Five-minute series stepping 30 noise scales up on day 8 for good. The level
    # shift keeps alarming for a day or two while the slow level catches up; that
    # is one departure, so it must not escalate on every noisy point beyond the
    # alerted one (the cooldown still lets it alert again after a day).
    rng = random.Random(seed)
    det = detector_for("generic", DetectionSettings())
    noise = 0.0
    alerts = []
    for i in range(10 * 288):
        ts = T0 + i * 300.0
        noise = 0.5 * noise + rng.gauss(0.0, 1.0)
        day = 5.0 * math.sin(2 * math.pi * (ts % 86400) / 86400)
        k = i - 8 * 288
        if det.update(ts, 50.0 + day + noise + (30.0 if k >= 0 else 0.0)).started and k >= 0:
            alerts.append(k)
    assert alerts[0] == 0
    assert len(alerts) <= 2


def _surge_alerts(settings: DetectionSettings, seed: int) -> list[int]:
    """Gamma-Poisson reports (mean 20 per 5 minutes) doubling for 6 h on day 22 from 09:00.

    Returns the alerts from a day before the surge, as point indexes from its start.
    """
    rng = random.Random(seed)
    det = detector_for("reports", settings)
    start = T0 + 22 * 86400 + 9 * 3600
    alerts = []
    for i in range(23 * 288):
        ts = T0 + i * 300.0
        lam = baseline_at(ts, 20.0)
        k = round((ts - start) / 300.0)
        if 0 <= k < 72:
            lam *= 2.0
        count = float(overdispersed_count(rng, lam, 5.0))
        if det.update(ts, count).started and k >= -288:
            alerts.append(k)
    return alerts


@pytest.mark.parametrize("seed", [1, 3, 4, 5])
def test_a_report_surge_of_hours_alerts_through_the_level_shift(seed: int) -> None:
    # Twice the usual reports for hours: no 5-minute count or 10-minute sum is
    # extreme against the overdispersed counts, and the fast drift follows the
    # surge; the excess over the last 3 hours against the slow baseline is not
    # ordinary.
    caught = _surge_alerts(DetectionSettings(), seed)
    assert caught and all(0 <= k < 72 for k in caught)
    assert _surge_alerts(DetectionSettings(reports_shift_windows_s=()), seed) == []
