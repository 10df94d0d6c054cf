"""The NAB scorer in bench/ on tiny hand-made cases."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_scorer() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "nab_score.py"
    spec = importlib.util.spec_from_file_location("nab_score", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["nab_score"] = module
    spec.loader.exec_module(module)
    return module


nab = _load_scorer()
STANDARD = nab.PROFILES["standard"]
N = 1000  # probation: 150 rows
WINDOWS = [(300, 399), (700, 799)]


def alerts_at(*rows: int) -> list[int]:
    flags = [0] * N
    for i in rows:
        flags[i] = 1
    return flags


def test_detection_on_the_left_window_edge_is_worth_one() -> None:
    raw = nab.score_file(alerts_at(300), [(300, 399)], STANDARD)
    assert raw == pytest.approx(1.0)


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    perfect = nab.score_file(alerts_at(300, 700), WINDOWS, STANDARD)
    null = nab.score_file(alerts_at(), WINDOWS, STANDARD)
    assert nab.normalised(perfect, 2, STANDARD) == pytest.approx(100.0)
    assert nab.normalised(null, 2, STANDARD) == pytest.approx(0.0)


def test_only_the_earliest_detection_in_a_window_counts() -> None:
    once = nab.score_file(alerts_at(350), [(300, 399)], STANDARD)
    more = nab.score_file(alerts_at(350, 360, 399), [(300, 399)], STANDARD)
    assert once == more
    assert 0.0 < once < 1.0


def test_false_positive_before_any_window_costs_full_weight() -> None:
    raw = nab.score_file(alerts_at(200), [(300, 399)], STANDARD)
    assert raw == pytest.approx(-1.0 - 0.11)


def test_false_positive_just_after_a_window_is_cheaper_than_far_after() -> None:
    near = nab.score_file(alerts_at(300, 401), [(300, 399)], STANDARD) - 1.0
    far = nab.score_file(alerts_at(300, 900), [(300, 399)], STANDARD) - 1.0
    assert -0.11 < near < 0.0
    assert far == pytest.approx(-0.11)


def test_detections_in_probation_are_ignored() -> None:
    assert nab.probation_rows(N) == 150
    assert nab.probation_rows(100_000) == 750
    assert nab.score_file(alerts_at(10), [], STANDARD) == 0.0


def test_profiles_weigh_misses_and_false_alarms_as_documented() -> None:
    low_fn = nab.PROFILES["reward_low_FN"]
    low_fp = nab.PROFILES["reward_low_FP"]
    assert nab.score_file(alerts_at(), WINDOWS, low_fn) == pytest.approx(-4.0)
    assert nab.score_file(alerts_at(200), [], low_fp) == pytest.approx(-0.22)
    assert math.isnan(nab.normalised(-0.22, 0, low_fp))


def test_sigmoid_matches_the_rule() -> None:
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert nab.scaled_sigmoid(3.5) == -1.0
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
