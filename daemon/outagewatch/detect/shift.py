"""Sustained level shifts (generic, reports): the mean residual over the last hours, O(1) a point.

A holiday in a taxi series, or a machine running a few degrees off for a day,
moves every point a little: each residual is ordinary, and the fast drift of the
baseline follows them. Their mean over a few hours, against the slow baseline
(level plus season, no drift), is not ordinary. Each window's mean is divided by
the root mean square of that same window mean in normal times (an EWMA), so the
series' own autocorrelation sets the spread, whatever the sampling interval.
Report counts doubling for a few hours are the same case: no 5-minute count is
extreme, and their excess over the last hours is.

Residuals are kept in hourly slots (sum and count), so the windows are whole
hours: the current, partial hour and the hours before it.
"""

from __future__ import annotations

import math
from typing import Any

from outagewatch.detect.settings import HOUR


class LevelShift:
    """Standardised mean residual over a few windows of whole hours."""

    def __init__(self, windows_s: tuple[float, ...], cap: float) -> None:
        """Windows rounded to whole hours; the spread is winsorised at `cap` of itself."""
        self.hours = [max(1, round(w / HOUR)) for w in windows_s]
        self.cap = cap
        n_slots = max(self.hours, default=1)
        self.sums = [0.0] * n_slots
        self.counts = [0] * n_slots
        self.hour = 0
        # EWMA of each window's squared mean over normal points, and how many were learnt.
        self.mean_sq = [0.0] * len(self.hours)
        self.learnt = 0
        # First residual seen: no verdict before twice the longest window has passed.
        self.since: float | None = None
        self.means = [0.0] * len(self.hours)

    def observe(self, timestamp: float, resid: float) -> float:
        """Add a residual; return the largest standardised window mean (signed), 0 while unknown."""
        if self.since is None:
            self.since = timestamp
        young = timestamp - self.since < 2 * HOUR * max(self.hours, default=0)
        hour = int(timestamp // HOUR)
        n_slots = len(self.sums)
        gap = hour - self.hour
        if gap > 0:
            for k in range(1, min(gap, n_slots) + 1):
                i = (self.hour + k) % n_slots
                self.sums[i] = 0.0
                self.counts[i] = 0
            self.hour = hour
        slot = self.hour % n_slots
        sums, counts = self.sums, self.counts
        sums[slot] += resid
        counts[slot] += 1
        known = not young and self.learnt > 0
        best = 0.0
        for j, hours in enumerate(self.hours):
            # The last `hours` slots from the current hour back, summed in that order
            # (as one window after another would).
            total, count, i = 0.0, 0, slot
            for _ in range(hours):
                total += sums[i]
                count += counts[i]
                i = i - 1 if i > 0 else n_slots - 1
            mean = self.means[j] = total / count if count else 0.0
            if known and self.mean_sq[j] > 0:
                z = mean / math.sqrt(self.mean_sq[j])
                if abs(z) > abs(best):
                    best = z
        return best

    def learn(self, keep: float) -> None:
        """Fold the current window means into their spread (`keep`: weight left on the past)."""
        self.learnt += 1
        a = max(1.0 / self.learnt, 1.0 - keep)
        for j, m in enumerate(self.means):
            sq = m * m
            if self.mean_sq[j] > 0:
                # Winsorised, so one shift widens the spread by a bounded step.
                sq = min(sq, self.cap * self.cap * self.mean_sq[j])
            self.mean_sq[j] += a * (sq - self.mean_sq[j])

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot."""
        return {
            "sums": list(self.sums),
            "counts": list(self.counts),
            "hour": self.hour,
            "mean_sq": list(self.mean_sq),
            "learnt": self.learnt,
            "since": self.since,
            "means": list(self.means),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a `to_state` snapshot."""
        if len(state["sums"]) != len(self.sums) or len(state["mean_sq"]) != len(self.mean_sq):
            raise ValueError("level shift state does not match the configured windows")
        self.sums = [float(v) for v in state["sums"]]
        self.counts = [int(v) for v in state["counts"]]
        self.hour = int(state["hour"])
        self.mean_sq = [float(v) for v in state["mean_sq"]]
        self.learnt = int(state["learnt"])
        self.since = None if state["since"] is None else float(state["since"])
        self.means = [float(v) for v in state["means"]]
