"""What is benchmarked is what runs: every `backtest --signal` is a detector the
daemon runs, built by the same function with the daemon's settings."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from outagewatch.cli import main
from outagewatch.clock import FakeClock
from outagewatch.config import load_config
from outagewatch.detect import BACKTEST_SIGNALS
from outagewatch.detect import signals as signals_module
from outagewatch.detect.backtest import run_backtest
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import (
    SIGNAL_DETECTORS,
    TRAFFIC_DETECTOR,
    SignalDetectors,
    traffic_signal,
)
from outagewatch.detect.spike import SpikeDetector, detector_for
from outagewatch.keys import traffic_source_key
from outagewatch.lenses.traffic import TrafficSample
from outagewatch.pipeline import Pipeline

CONFIG = """
detection: {warmup_s: 0, warmup_points: 8, z_alarm: 5.5}
services:
  claude:
    traffic:
      requests: {url: "http://127.0.0.1:1", query: "up", interval: 1s, timeout: 500ms}
"""


def test_every_backtest_signal_is_a_detector_the_daemon_runs() -> None:
    daemon_kinds = {*SIGNAL_DETECTORS.values(), TRAFFIC_DETECTOR}
    assert daemon_kinds == set(BACKTEST_SIGNALS)


@pytest.mark.parametrize("kind", BACKTEST_SIGNALS)
def test_backtest_and_daemon_build_each_detector_with_one_function_and_settings(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[str, DetectionSettings]] = []
    real = detector_for

    def recording(signal: str, settings: DetectionSettings) -> SpikeDetector:
        built.append((signal, settings))
        return real(signal, settings)

    monkeypatch.setattr(signals_module, "detector_for", recording)
    settings = DetectionSettings(warmup_points=5, z_alarm=5.0)
    list(run_backtest(kind, [(1.0, 1.0)], settings))
    daemon = SignalDetectors(settings)
    daemon.configure(settings, ["s"], [("s", "q")])
    signal = next(
        (label for label, det in SIGNAL_DETECTORS.items() if det == kind), traffic_signal("q")
    )
    daemon.feed("s", signal, 1.0, 1.0)
    assert built == [(kind, settings), (kind, settings)]


def test_backtest_with_the_daemons_config_scores_what_the_daemon_runs(tmp_path: Path) -> None:
    config_path = tmp_path / "outagewatch.yml"
    config_path.write_text(CONFIG)
    config = load_config(config_path)
    rows = [
        (1_700_000_000.0 + i, 100.0 + i % 3 + (300.0 if 20 <= i < 24 else 0.0)) for i in range(40)
    ]
    source = tmp_path / "traffic.csv"
    with source.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)
    scored = tmp_path / "scored.csv"
    argv = ["backtest", "--signal", "generic", "--config.file", str(config_path), str(source)]
    assert main([*argv, "-o", str(scored)]) == 0
    with scored.open() as result:
        backtest = [(float(r["score"]), int(r["alert"])) for r in csv.DictReader(result)]

    clock = FakeClock(rows[0][0])
    pipeline = Pipeline(clock)
    pipeline.configure_detection(config, {traffic_source_key("claude", "requests")})
    daemon = []
    for time, value in rows:
        pipeline.ingest([TrafficSample("claude", "requests", time, value, 1)])
        status = pipeline.state.signals.status[("claude", traffic_signal("requests"))]
        daemon.append((status.verdict.score, int(status.verdict.started)))
    assert [alert for _, alert in backtest] == [alert for _, alert in daemon]
    assert sum(alert for _, alert in daemon) >= 1
    assert all(
        math.isclose(a, b, abs_tol=1e-6) for (a, _), (b, _) in zip(backtest, daemon, strict=True)
    )
    # The defaults differ (z_alarm 6): without the config the backtest is not what ran here.
    assert config.detection != DetectionSettings()


def test_backtest_with_a_malformed_config_exits_78(tmp_path: Path) -> None:
    config_path = tmp_path / "bad.yml"
    config_path.write_text("detection: {z_alarm: -1}\n")
    source = tmp_path / "x.csv"
    source.write_text("timestamp,value\n1,1\n")
    assert (
        main(["backtest", "--signal", "generic", "--config.file", str(config_path), str(source)])
        == 78
    )
