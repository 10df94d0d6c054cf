"""The report-stream goal: outages >= 5x caught within 10 minutes, few false alarms."""

from __future__ import annotations

from outagewatch.detect import DetectionSettings, detector_for
from outagewatch.detect.synthetic import simulate


def test_synthetic_streams_have_zeros_at_low_volume_and_outages_in_range() -> None:
    stream = simulate(3, 1.0, seed=11)
    zeros = sum(1 for _, v in stream.rows if v == 0) / len(stream.rows)
    assert zeros > 0.3
    assert stream.outages
    for outage in stream.outages:
        assert 2.0 <= outage.multiplier <= 50.0
        assert 300.0 <= outage.end - outage.start <= 7200.0


def test_big_outages_are_caught_within_ten_minutes_and_quiet_weeks_stay_quiet() -> None:
    settings = DetectionSettings()
    big = caught = 0
    for mean in (5.0, 50.0):
        for seed in (101, 102):
            stream = simulate(5, mean, seed=seed)
            det = detector_for("reports", settings)
            starts = [ts for ts, v in stream.rows if det.update(ts, v).started]
            for outage in stream.outages:
                if outage.multiplier >= 5.0:
                    big += 1
                    caught += any(outage.start <= t <= outage.start + 600.0 for t in starts)
    alarms = weeks = 0
    for mean in (5.0, 50.0):
        stream = simulate(4, mean, seed=201, outages_from_s=None)
        det = detector_for("reports", settings)
        alarms += sum(det.update(ts, v).started for ts, v in stream.rows)
        weeks += 4
    assert big >= 20
    assert caught / big >= 0.95
    assert alarms / weeks <= 1.0
