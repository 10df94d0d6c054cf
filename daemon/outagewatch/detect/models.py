"""One model per kind of signal: its unit, its scale, its floors and which tests judge it.

The spike detector (`spike.py`) is the same for every signal; what differs is
said here, once per kind, instead of in branches on the signal's name. A kind
is what `backtest --signal` takes; the daemon's signal labels map to kinds in
`registry.py`.

- `reports`: counts whose day and week multiply, negative-binomial scale;
  adds the count scan, the level shift upward (3 h, 24 h), the far-tail fit
  and confirmation of lone points on bursty streams; floors: a count and a
  ratio to the baseline.
- `latency`: seconds, spread floored at 50 ms.
- `failure_ratio`: spread floored at 0.02; floor: the value 0.1.
- `rank`: on -ln rank, spread floored at 0.1; adds the climb rate and the top N.
- `generic`: any series, two-sided; adds the novelty, the level shift either
  way (6 h, 24 h) with its hold, and resume.
"""

from __future__ import annotations

import math
from typing import Final

from outagewatch.detect.settings import DetectionSettings


class SignalModel:
    """Upward spikes of an additive series, scaled by its spread; no extra tests.

    Subclasses switch tests on (class attributes) and change the unit, the
    scale floor and the alerting floors.
    """

    name = ""
    # Seasons multiply the level (counts) instead of adding to it.
    multiplicative = False
    # A change either way is news (+1 above the baseline, -1 below).
    two_sided = False
    # reports: the windowed negative-binomial count scan (`counts.py`).
    count_scan = False
    # reports: the tail fitted over a second, higher threshold too.
    far_tail = False
    # reports: on a bursty stream a point alarm needs another test's backing.
    confirm_lone_points = False
    # generic: contextual nearest-neighbour novelty (`novelty.py`).
    novelty = False
    # reports, generic: the level-shift test (`shift.py`), off at `shift_z` 0.
    level_shift = False
    # generic: the level shift holds drift and season while it departs.
    shift_holds = False
    # generic: an alarm soon after an alert resumes its spike instead of alerting.
    resumes = False
    # rank: a fast climb or entering the top N alarms by itself.
    climb_rule = False

    def transform(self, value: float) -> float:
        """The value in the unit the statistics run in."""
        return value

    def untransform(self, y: float) -> float:
        """Back from the statistics' unit to the signal's own."""
        return y

    def scale(self, s: DetectionSettings, spread: float, baseline: float, phi: float) -> float:
        """The scale z is measured in; `phi` is the count dispersion (counts only)."""
        return max(spread, s.min_relative_scale * abs(baseline), 1e-9)

    def shift_windows(self, s: DetectionSettings) -> tuple[float, ...]:
        """The level shift's windows (seconds; its state has them even where it is off)."""
        return s.shift_windows_s

    def worth_alerting(
        self, s: DetectionSettings, value: float, baseline: float, current: float
    ) -> bool:
        """Floors: whether an alarm on `value` (the alarming count or value) may alert."""
        return True


class ReportCounts(SignalModel):
    """Users' reports per 5 minutes: overdispersed counts whose day and week multiply."""

    name = "reports"
    multiplicative = True
    count_scan = True
    far_tail = True
    confirm_lone_points = True
    level_shift = True

    def scale(self, s: DetectionSettings, spread: float, baseline: float, phi: float) -> float:
        # Negative-binomial spread at this level, never below one report.
        lam = max(baseline, 0.0)
        return max(1.0, math.sqrt(lam + phi * lam * lam))

    def shift_windows(self, s: DetectionSettings) -> tuple[float, ...]:
        return s.reports_shift_windows_s

    def worth_alerting(
        self, s: DetectionSettings, value: float, baseline: float, current: float
    ) -> bool:
        # A handful of reports is not an outage, however quiet the baseline.
        return value >= s.reports_min_count and current >= s.reports_min_ratio * baseline


class Latency(SignalModel):
    """Times to first token and answer times (seconds): upward, floored at 50 ms."""

    name = "latency"

    def scale(self, s: DetectionSettings, spread: float, baseline: float, phi: float) -> float:
        return max(spread, s.latency_min_scale_s, s.min_relative_scale * abs(baseline))


class FailureRatio(SignalModel):
    """Share of failed probe runs per minute: upward, and at least `failure_ratio_min_value`."""

    name = "failure_ratio"

    def scale(self, s: DetectionSettings, spread: float, baseline: float, phi: float) -> float:
        return max(spread, s.failure_ratio_min_scale, s.min_relative_scale * abs(baseline))

    def worth_alerting(
        self, s: DetectionSettings, value: float, baseline: float, current: float
    ) -> bool:
        return value >= s.failure_ratio_min_value


class ChartRank(SignalModel):
    """App Store rank (1 is the top): a climb is multiplicative, so it runs on -ln rank."""

    name = "rank"
    climb_rule = True

    def transform(self, value: float) -> float:
        # 200 -> 100 is like 20 -> 10.
        return -math.log(max(value, 1.0))

    def untransform(self, y: float) -> float:
        return math.exp(-y)

    def scale(self, s: DetectionSettings, spread: float, baseline: float, phi: float) -> float:
        return max(spread, s.rank_min_log_scale)


class TwoSided(SignalModel):
    """Any metric where a change either way is news (traffic queries, NAB's series)."""

    name = "generic"
    two_sided = True
    novelty = True
    level_shift = True
    shift_holds = True
    resumes = True


MODELS: Final[dict[str, SignalModel]] = {
    m.name: m for m in (ReportCounts(), Latency(), FailureRatio(), ChartRank(), TwoSided())
}
