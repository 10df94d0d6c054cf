"""A Numenta Anomaly Benchmark scorer, written from the rules in docs/DETECTION.md.

Scores binary detections (one 0/1 per row) against labelled anomaly windows:
earliest detection in a window earns a sigmoid-weighted reward, a missed window
costs `fn`, a detection outside every window costs up to `fp`, and the first
rows of each file (probation) are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of true positives, false negatives and false positives."""

    tp: float
    fn: float
    fp: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fn=1.0, fp=0.11),
    "reward_low_FP": Profile(tp=1.0, fn=1.0, fp=0.22),
    "reward_low_FN": Profile(tp=1.0, fn=2.0, fp=0.11),
}


def scaled_sigmoid(p: float) -> float:
    """NAB's S(p) = 2 / (1 + e^(5p)) - 1, and -1 beyond p = 3."""
    if p > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def probation_rows(n_rows: int) -> int:
    """Rows at the start of a file whose detections are ignored."""
    return min(math.floor(0.15 * n_rows), 750)


def window_rows(
    timestamps: Sequence[float], windows: Iterable[tuple[float, float]]
) -> list[tuple[int, int]]:
    """Convert [start, end] times to inclusive row ranges (rows whose time is inside)."""
    rows = []
    for start, end in windows:
        inside = [i for i, t in enumerate(timestamps) if start <= t <= end]
        if inside:
            rows.append((inside[0], inside[-1]))
    return sorted(rows)


def score_file(
    alerts: Sequence[int], windows: Sequence[tuple[int, int]], profile: Profile
) -> float:
    """Raw score of one file's detections against its windows (row indexes)."""
    probation = probation_rows(len(alerts))
    earliest: dict[int, int] = {}
    fp_total = 0.0
    for i, flagged in enumerate(alerts):
        if not flagged or i < probation:
            continue
        hit = next((k for k, (lo, hi) in enumerate(windows) if lo <= i <= hi), None)
        if hit is not None:
            earliest.setdefault(hit, i)
            continue
        previous = [(lo, hi) for lo, hi in windows if hi < i]
        if not previous:
            fp_total -= profile.fp
        else:
            lo, hi = previous[-1]
            width = hi - lo + 1
            fp_total += profile.fp * scaled_sigmoid(abs(i - hi) / max(1, width - 1))
    window_total = 0.0
    for k, (lo, hi) in enumerate(windows):
        if k in earliest:
            width = hi - lo + 1
            position = -(hi - earliest[k] + 1) / width
            window_total += profile.tp * scaled_sigmoid(position) / scaled_sigmoid(-1.0)
        else:
            window_total -= profile.fn
    return window_total + fp_total


def normalised(raw: float, n_windows: int, profile: Profile) -> float:
    """100 for a perfect detector, 0 for one that never fires; NaN without windows."""
    if n_windows == 0:
        # Perfect and null coincide: only the raw (false-positive) score means anything.
        return math.nan
    null = -profile.fn * n_windows
    perfect = profile.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)
