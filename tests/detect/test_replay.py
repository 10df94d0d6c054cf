"""detect/replay.py: stored history through the live path, and the swap into live detectors."""

from __future__ import annotations

import random

from outagewatch.detect.replay import adopt, bucket_start, needs_replay, replay, warmup
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import SignalDetectors
from outagewatch.warmstart import stored_reports

SETTINGS = DetectionSettings()
T0 = 1_760_000_100.0  # a bucket start plus 100 s


def history(hours: float, per_5m: float, seed: int = 7) -> list[tuple[float, str]]:
    rng = random.Random(seed)
    end = T0 + hours * 3600
    times = sorted(rng.uniform(T0, end) for _ in range(int(hours * 12 * per_5m)))
    return [(t, "claude") for t in times]


def test_replay_is_the_live_path_point_for_point() -> None:
    reports = history(30, 4)
    until = bucket_start(reports[-1][0]) + 300
    live = SignalDetectors(SETTINGS)
    live.configure(SETTINGS, ["claude"])
    for when, service in reports:
        live.report(service, when)
    live.close(until)
    done = replay(SETTINGS, ["claude"], reports, until)
    assert done.reports == len(reports)
    assert done.signals.snapshot() == live.snapshot()
    detector = done.signals.detectors[("claude", "reports")]
    assert detector.n == 30 * 12  # every 5 minutes a count, zeros included


def test_adopt_swaps_the_detector_without_a_duplicate_point_and_keeps_live_alerts() -> None:
    reports = history(10, 3)
    now = reports[-1][0] + 1000
    live = SignalDetectors(SETTINGS)
    live.configure(SETTINGS, ["claude", "gemini"])
    live.open_reports("claude", now - 900, 2)  # a daemon up for 15 minutes, cold
    live.spikes_total[("claude", "reports")] = 3  # what it counted live stays
    live.close(now)
    cold_points = live.detectors[("claude", "reports")].n
    assert cold_points == 3

    done = replay(SETTINGS, ["claude"], reports, bucket_start(now))
    assert adopt(live, done) == ["claude"]
    adopted = live.detectors[("claude", "reports")]
    assert adopted is done.signals.detectors[("claude", "reports")]
    assert live.status[("claude", "reports")].spikes == 3
    assert live.spikes_total[("claude", "reports")] == 3
    before = adopted.n
    live.report("claude", now + 1)  # the live bucket: after the replay's last point
    live.close(bucket_start(now) + 300)
    assert adopted.n == before + 1
    assert live.status[("claude", "reports")].last_time == bucket_start(now) + 300
    assert ("gemini", "reports") not in live.detectors  # nothing stored, nothing adopted


def test_adopt_converts_to_settings_reloaded_meanwhile() -> None:
    reports = history(2, 2)
    done = replay(SETTINGS, ["claude"], reports, bucket_start(reports[-1][0]) + 300)
    reloaded = DetectionSettings(warmup_points=10)
    live = SignalDetectors(reloaded)
    live.configure(reloaded, ["claude"])
    adopt(live, done)
    assert live.detectors[("claude", "reports")].settings == reloaded


def test_stored_rows_that_are_not_times_are_left_out() -> None:
    rows = [
        (1, "12", "claude", "app", None),
        (2, float("nan"), "claude", "app", None),
        (3, True, "claude", "app", None),
        (4, 1.0e9, "removed", "app", None),
        (5, 1.0e9, "claude", "app", None),
        (6, 1_000_000_100, "claude", "app", None),
    ]
    assert list(stored_reports(rows, ["claude"])) == [(1.0e9, "claude"), (1.0000001e9, "claude")]


def test_needs_replay_when_missing_or_history_predates_the_detector() -> None:
    assert not needs_replay(None, None)  # no history: nothing to learn
    assert needs_replay(None, T0)
    done = replay(SETTINGS, ["claude"], history(5, 2), T0 + 5 * 3600)
    detector = done.signals.detectors[("claude", "reports")]
    assert not needs_replay(detector, T0)  # it was built from that history
    assert needs_replay(detector, T0 - 7 * 86400)  # older history imported since


def test_warmup_counts_points_and_time_against_the_settings() -> None:
    cold = warmup("reports", None, SETTINGS)
    assert (cold.points, cold.seconds, cold.warm) == (0, 0.0, False)
    done = replay(SETTINGS, ["claude"], history(3, 2), T0 + 3 * 3600)
    short = warmup("reports", done.signals.detectors[("claude", "reports")], SETTINGS)
    assert short.points == 35 and not short.warm  # enough points, not 6 hours
    done = replay(SETTINGS, ["claude"], history(8, 2), T0 + 8 * 3600)
    long = warmup("reports", done.signals.detectors[("claude", "reports")], SETTINGS)
    assert long.warm and long.seconds >= 6 * 3600


def test_at_start_only_a_replay_that_goes_back_further_replaces_a_live_detector() -> None:
    reports = history(10, 3)
    now = reports[-1][0] + 1000
    first = replay(SETTINGS, ["claude"], reports, bucket_start(now))
    live = SignalDetectors(SETTINGS)
    live.configure(SETTINGS, ["claude"])
    assert adopt(live, first) == ["claude"]
    # The same history again (a restart): the detector it has stays.
    again = replay(SETTINGS, ["claude"], reports, bucket_start(now))
    assert adopt(live, again, older_only=True) == []
    assert live.detectors[("claude", "reports")] is first.signals.detectors[("claude", "reports")]
    # Older history imported since: replaced.
    older = [(t - 86400, s) for t, s in history(20, 3, seed=8)] + reports
    older.sort()
    deeper = replay(SETTINGS, ["claude"], older, bucket_start(now))
    assert adopt(live, deeper, older_only=True) == ["claude"]
