"""The leave-one-category-out cross-validation in bench/ on hand-made raw scores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import cv_detection as cv
from nab_score import PROFILES, normalised

WINDOWS = {
    "realTweets": 10,
    "realKnownCause": 5,
    "artificialWithAnomaly": 2,
    "artificialNoAnomaly": 0,
}
DEFAULT = (("z_alarm", 6.0),)
LOW = (("z_alarm", 5.5),)


def test_each_fold_chooses_on_the_other_three_and_scores_the_fourth() -> None:
    # LOW is better on realTweets only: only the realTweets fold must keep DEFAULT.
    raw = {
        DEFAULT: {
            "realTweets": 2.0,
            "realKnownCause": 1.0,
            "artificialWithAnomaly": 1.0,
            "artificialNoAnomaly": -0.1,
        },
        LOW: {
            "realTweets": 6.0,
            "realKnownCause": 0.5,
            "artificialWithAnomaly": 1.0,
            "artificialNoAnomaly": -0.3,
        },
    }
    result = cv.cross_validate(raw, WINDOWS)
    chosen = {f.held_out: f.chosen for f in result.folds}
    assert chosen == {
        "realTweets": DEFAULT,
        "realKnownCause": LOW,
        "artificialWithAnomaly": LOW,
        "artificialNoAnomaly": LOW,
    }
    held_out = 2.0 + 0.5 + 1.0 - 0.3
    standard = PROFILES["standard"]
    assert result.cv_score == pytest.approx(normalised(held_out, 17, standard))
    assert result.in_sample == pytest.approx(normalised(3.9, 17, standard))
    assert result.gap == pytest.approx(result.in_sample - result.cv_score)
    # The window-less category scores only its false-alarm terms, held out too.
    fold = next(f for f in result.folds if f.held_out == "artificialNoAnomaly")
    assert fold.held_out_raw == -0.3 and fold.held_out_windows == 0


def test_ties_keep_the_defaults() -> None:
    same = {c: 1.0 for c in WINDOWS}
    result = cv.cross_validate({DEFAULT: same, LOW: dict(same)}, WINDOWS)
    assert all(f.chosen == DEFAULT for f in result.folds)
    assert result.gap == pytest.approx(0.0)


def test_the_grid_starts_at_the_defaults() -> None:
    from outagewatch.detect.settings import DetectionSettings

    first = dict(cv.grid_points(cv.GRID)[0])
    defaults = DetectionSettings()
    assert all(getattr(defaults, name) == value for name, value in first.items())
    assert len(cv.grid_points(cv.GRID)) == 9
