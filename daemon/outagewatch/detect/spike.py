"""Online spike detection: one observation at a time, O(1) work, serialisable state.

The baseline is a de-seasonalised EWMA level plus a seasonal deviation (hour of
week once two weeks are seen, hour of day before that) and a fast drift.
Residuals are scaled by the signal model's scale (`models.py`: an EWMA spread
floored per signal, or the negative-binomial spread for counts), and the
resulting z is divided by the stream's tail factor (`alarms.TailCalibration`),
so a stream whose ordinary bursts are wild needs a wilder burst to alert.

The named tests (`alarms.py`) then judge the calibrated z: a single point
(`DayResiduals`: alone, it must beat the day's largest residual), a CUSUM
(`Cusum`), a break of the seen range (`RangeTest`), and where the model asks
for them the count scan (`CountScan`), the contextual novelty
(`NoveltyTest`), the level shift (`shift.LevelShift`) and the rank climb. The
alert state machine (`alarms.AlertMachine`) turns the combined evidence into
alerts: an *alert* (`SpikeVerdict.started`) is the onset of a spike, a
cooldown of `cooldown_s` follows it, only an escalation may alert inside it;
`active` is the held state until z falls back to `z_exit`. Time comes only
from the observation timestamps, so spacing may be arbitrary.
"""

from __future__ import annotations

import math
from typing import Any, Final

from outagewatch.detect.alarms import (
    AlertMachine,
    CountScan,
    Cusum,
    DayResiduals,
    NoveltyTest,
    RangeTest,
    TailCalibration,
    decay,
)
from outagewatch.detect.models import MODELS, SignalModel
from outagewatch.detect.settings import DAY, HOUR, DetectionSettings
from outagewatch.detect.shift import LevelShift

# The daemon's detector kinds (upward spikes only) and, for `backtest --signal`,
# every kind: `generic` is any metric where a change either way is news.
SIGNALS: Final = ("reports", "latency", "failure_ratio", "rank")
BACKTEST_SIGNALS: Final = tuple(MODELS)
WEEK: Final = 7 * DAY
# Version 4 gained the residual window and tail cluster keys (issue 7nab4),
# the level shift's hourly slots (issue 7gen) and the novelty run (issue
# 7gen4); a version-4 state without them restores with them empty. The
# alerted peak is a calibrated z since issue 7nab13 (`alert_peak_z`); an older
# state's raw `alert_peak` is ignored and the peak restores as 0, so an alarm
# inside that cooldown may alert once more. The pending lone alarm of issue
# 7nab5 is gone: its keys in an older state are ignored. Issue 19 split the
# detector into models and named tests with the same keys: a state saved
# before restores unchanged.
_STATE_VERSION: Final = 4


# Plain classes, not dataclasses: compiled (setup.py), a dataclass's generated
# __init__ stays interpreted, and these are built on every point.
class _Point:
    """One observation as measured against the baseline, before any test."""

    def __init__(
        self,
        *,
        timestamp: float,
        value: float,
        x: float,
        dt: float,
        season: float,
        weekly_known: bool,
        season_known: bool,
        base_y: float,
        sigma: float,
        z: float,
        warm: bool,
        tail: float,
        zt: float,
        sign: float,
    ) -> None:
        self.timestamp = timestamp
        self.value = value
        self.x = x  # the value in the unit the statistics run in (-ln rank for rank)
        self.dt = dt
        self.season = season
        self.weekly_known = weekly_known  # the weekly profile knows this hour (it gives the season)
        self.season_known = season_known  # a profile knows this hour
        self.base_y = base_y
        self.sigma = sigma
        self.z = z
        self.warm = warm
        self.tail = tail
        self.zt = zt  # z divided by the stream's tail factor
        # The direction judged: +1, or -1 on a two-sided stream below the baseline.
        self.sign = sign


class _Findings:
    """What the named tests found on one point."""

    def __init__(self) -> None:
        self.range_break = False
        self.novel = False
        self.novelty_dist = 0.0
        self.seasoned = False
        self.shift_z = 0.0
        self.shift_size = 0.0
        self.shift_alarm = False
        self.resid_top: float | None = None
        self.point_counts = True
        self.cusum = 0.0
        self.scan_z = 0.0
        self.scan_count = 0.0


class SpikeVerdict:
    """What the detector concluded about one observation.

    `score` is 0..1 with 0.5 where a test reaches its alarm level; `started` is the
    alert decision, true only on the observation that begins a new spike (this is
    what pages and what `outagewatch_spikes_total` counts); `active` is the held
    state from that alert until the value is back near the baseline (exported as a
    gauge); `baseline` is the expected value in the signal's own unit. A value:
    compared by its fields, never changed.
    """

    def __init__(self, score: float, active: bool, baseline: float, started: bool) -> None:
        self.score: Final = score
        self.active: Final = active
        self.baseline: Final = baseline
        self.started: Final = started

    def _fields(self) -> tuple[float, bool, float, bool]:
        return (self.score, self.active, self.baseline, self.started)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpikeVerdict):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return (
            f"SpikeVerdict(score={self.score!r}, active={self.active!r}, "
            f"baseline={self.baseline!r}, started={self.started!r})"
        )


class SeasonalProfile:
    """How the value compares with the level in each slot of a period (hour of day or week).

    Each slot keeps exponentially weighted means of the observed value and of the
    level at the same moments; their ratio (multiplicative seasons, for counts) or
    difference (additive) is the seasonal effect. The memory is a number of
    periods whatever the sampling interval: an observation weighs by the share of
    its slot it covers.
    """

    def __init__(self, period_s: float, slot_s: float, min_periods: int, memory: float) -> None:
        """Create an empty profile of `period_s / slot_s` slots."""
        self.period_s = period_s
        self.slot_s = slot_s
        self.min_periods = min_periods
        self.memory = memory
        n_slots = round(period_s / slot_s)
        self.observed = [0.0] * n_slots
        self.reference = [0.0] * n_slots
        self.mass = [0.0] * n_slots
        self.periods = [0] * n_slots
        self.last_period = [-1] * n_slots

    def _slot(self, timestamp: float) -> int:
        return int((timestamp % self.period_s) // self.slot_s)

    def expected(self, timestamp: float, multiplicative: bool) -> float | None:
        """Seasonal factor (or offset) at this time; None while the slot is too young."""
        slot = self._slot(timestamp)
        if self.periods[slot] < self.min_periods:
            return None
        if not multiplicative:
            return self.observed[slot] - self.reference[slot]
        if self.reference[slot] <= 0.0:
            return None
        return max(0.0, self.observed[slot]) / self.reference[slot]

    def update(self, timestamp: float, dt: float, observed: float, reference: float) -> None:
        """Fold one observation and the level it was compared with into its slot."""
        slot = self._slot(timestamp)
        period = int(timestamp // self.period_s)
        if self.last_period[slot] != period:
            self.last_period[slot] = period
            self.periods[slot] += 1
        share = min(dt, self.slot_s) / self.slot_s if dt > 0 else 1.0
        # Bias-corrected EWMA: the first observations average plainly, and the
        # steady-state mass is `memory` periods' worth of observations.
        self.mass[slot] = self.mass[slot] * (1.0 - share / self.memory) + share
        weight = share / self.mass[slot]
        self.observed[slot] += weight * (observed - self.observed[slot])
        self.reference[slot] += weight * (reference - self.reference[slot])

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot of the slots."""
        return {
            "observed": list(self.observed),
            "reference": list(self.reference),
            "mass": list(self.mass),
            "periods": list(self.periods),
            "last_period": list(self.last_period),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the slots written by `to_state`."""
        n = len(self.observed)
        for key in ("observed", "reference", "mass", "periods", "last_period"):
            if len(state[key]) != n:
                raise ValueError(f"seasonal state {key!r} has {len(state[key])} slots, not {n}")
        self.observed = [float(v) for v in state["observed"]]
        self.reference = [float(v) for v in state["reference"]]
        self.mass = [float(v) for v in state["mass"]]
        self.periods = [int(v) for v in state["periods"]]
        self.last_period = [int(v) for v in state["last_period"]]


class SpikeDetector:
    """Spike detector for one signal of one service, judged by its kind's model.

    `signal` is a kind of `models.MODELS` (`BACKTEST_SIGNALS`): `reports`,
    `latency`, `failure_ratio`, `rank` (the input is the chart rank, 1 is the
    top, and a spike is a climb) detect upward spikes; `generic` both ways.
    """

    def __init__(self, signal: str, settings: DetectionSettings) -> None:
        """Create a detector with no history."""
        model = MODELS.get(signal)
        if model is None:
            raise ValueError(
                f"unknown signal {signal!r}; expected one of {', '.join(BACKTEST_SIGNALS)}"
            )
        s = self.settings = settings
        self.signal = signal
        self.model: SignalModel = model
        self.multiplicative = model.multiplicative
        self.daily = SeasonalProfile(DAY, HOUR, s.daily_min_days, s.season_memory_periods)
        self.weekly = SeasonalProfile(WEEK, HOUR, s.weekly_min_weeks, s.season_memory_periods)
        self.n = 0
        self.first_ts = 0.0
        self.last_ts = 0.0
        # Baseline = slow de-seasonalised level + seasonal deviation + fast drift.
        # The seasonal slots learn against the slow level only, so the fast part
        # cannot trade shape with them.
        self.level = 0.0
        self.drift = 0.0
        self.var = 0.0
        # Counts: EWMAs of (r^2 - lambda) and lambda^2, whose ratio estimates the
        # negative-binomial dispersion, so the spread follows the level through the day.
        self.excess = 0.0
        self.level_sq = 0.0
        self.last_rank = math.nan
        self.last_verdict = SpikeVerdict(0.0, False, math.nan, False)
        # The named tests and the alert state machine.
        self.tail = TailCalibration(s, model.far_tail)
        self.range = RangeTest(s)
        self.cusum = Cusum(s, model.two_sided)
        self.day = DayResiduals(s)
        self.scan = CountScan(s)
        self.novelty = NoveltyTest(s)
        windows = model.shift_windows(s)
        self.use_shift = model.level_shift and s.shift_z > 0 and bool(windows)
        self.shift = LevelShift(windows, s.winsor_z)
        self.alerts = AlertMachine(s, model.resumes)

    @property
    def alert_sign(self) -> float:
        """Direction of the last alert: +1 above the baseline, -1 below."""
        return self.alerts.sign

    @property
    def active(self) -> bool:
        """Whether a spike is held."""
        return self.alerts.active

    def _dispersion(self) -> float:
        """Negative-binomial dispersion of counts (variance lambda + phi lambda^2)."""
        phi = self.settings.reports_dispersion
        if self.level_sq > 0:
            phi = max(phi, self.excess / self.level_sq)
        return phi

    def _rank_rule(self, rank: float, timestamp: float) -> bool:
        """Fast climb in places per hour, or entering the top N."""
        prev = self.last_rank
        if math.isnan(prev):
            return False
        s = self.settings
        if prev > s.rank_top >= rank:
            return True
        dt = timestamp - self.last_ts
        return dt > 0 and (prev - rank) * HOUR / dt >= s.rank_climb_per_hour

    def _seasonal(self, timestamp: float) -> tuple[float, bool, bool]:
        """(factor (multiplicative) or offset (additive) of this hour, neutral while unknown;
        whether the weekly profile knows it; whether either profile does)."""
        weekly = self.weekly.expected(timestamp, self.multiplicative)
        if weekly is not None:
            return weekly, True, True
        daily = self.daily.expected(timestamp, self.multiplicative)
        if daily is not None:
            return daily, False, True
        return (1.0 if self.multiplicative else 0.0), False, False

    def _apply_season(self, level: float, season: float) -> float:
        return level * season if self.multiplicative else level + season

    def _remove_season(self, x: float, season: float) -> float:
        if not self.multiplicative:
            return x - season
        # A near-zero factor would blow one quiet-hour count up into a huge level.
        return x / max(season, 0.05)

    def update(self, timestamp: float, value: float) -> SpikeVerdict:
        """Take one observation and return the verdict on it.

        Non-finite values and timestamps older than the last one are ignored and
        the previous verdict is returned, so a restart replaying data is harmless.
        """
        if not (math.isfinite(value) and math.isfinite(timestamp)):
            return self.last_verdict
        if self.n and timestamp < self.last_ts:
            return self.last_verdict
        p = self._measure(timestamp, value)
        cooling, resuming, blocked = self.alerts.cooldown(timestamp, p.zt, p.sign)
        idle = p.warm and not (self.alerts.active or blocked)
        f = self._run_tests(p, idle)
        backed = self._backed(f)
        spike_evidence = self._spike_evidence(p, f, backed)
        shift_evidence = f.shift_size / self.settings.shift_z if self.use_shift else 0.0
        evidence = max(spike_evidence, shift_evidence)
        score = evidence / (1.0 + evidence) if evidence > 0 else 0.0
        baseline = self.model.untransform(p.base_y)
        alarm = p.warm and (
            evidence >= 1.0 or (self.model.climb_rule and self._rank_rule(value, timestamp))
        )
        if alarm and not backed and self._needs_backing(p.tail):
            # A bursty stream: one 5-minute burst is its ordinary noise. A burst
            # that lasts shows in the count scan of the next points (calibrated
            # by the same tail), a new maximum in the range break.
            alarm = False
        # An alarm the cooldown suppresses is a repeat of the alerted incident,
        # not a normal point: like the alert's own points, it does not teach the tail.
        suppressed = alarm and blocked and not self.alerts.active
        started = self.alerts.step(
            timestamp,
            p.zt,
            p.sign,
            alarm=alarm,
            resuming=resuming and spike_evidence >= 1.0,
            # The level shift does not escalate: inside the cooldown its window
            # mean is the same departure, a point beyond the alerted one is noise.
            may_alert=not blocked
            and not (cooling and spike_evidence < 1.0 and self.use_shift)
            and self.model.worth_alerting(self.settings, max(value, f.scan_count), baseline, value),
        )
        if started:
            self.cusum.up = self.cusum.down = 0.0
        self._learn_point(p, f, suppressed)
        self.last_verdict = SpikeVerdict(score, self.alerts.active, baseline, started)
        return self.last_verdict

    def _measure(self, timestamp: float, value: float) -> _Point:
        """The point against the baseline: its z, raw and calibrated by the tail factor."""
        s = self.settings
        model = self.model
        x = model.transform(value)
        if self.n == 0:
            self.first_ts = self.last_ts = timestamp
            self.level = self.range.hi = self.range.lo = x
        season, weekly_known, season_known = self._seasonal(timestamp)
        base_y = self._apply_season(self.level + self.drift, season)
        phi = self._dispersion() if model.count_scan else 0.0
        sigma = model.scale(s, math.sqrt(self.var), model.untransform(base_y), phi)
        z = (x - base_y) / sigma
        tail = self.tail.factor()
        zt = z / tail
        return _Point(
            timestamp=timestamp,
            value=value,
            x=x,
            dt=timestamp - self.last_ts,
            season=season,
            weekly_known=weekly_known,
            season_known=season_known,
            base_y=base_y,
            sigma=sigma,
            z=z,
            warm=self.n >= s.warmup_points and timestamp - self.first_ts >= s.warmup_s,
            tail=tail,
            zt=zt,
            sign=1.0 if zt >= 0 or not model.two_sided else -1.0,
        )

    def _run_tests(self, p: _Point, idle: bool) -> _Findings:
        """Every named test the model asks for, on the measured point."""
        s = self.settings
        f = _Findings()
        f.range_break = self.range.test(p.x, p.base_y, p.dt, p.zt, p.sign)
        if self.model.novelty:
            f.novel, f.novelty_dist = self.novelty.test(
                p.x, self.range.hi - self.range.lo, p.zt, p.sign
            )
        if self.use_shift and p.season_known:
            # Fed once a season is known (before, the residuals would carry the
            # daily cycle). For counts the residual is the excess count itself
            # (issue 7nab11).
            f.seasoned = True
            level = self._apply_season(self.level, p.season)
            f.shift_z = self.shift.observe(p.timestamp, p.x - level)
        # Two-sided: either way; otherwise upward only.
        f.shift_size = abs(f.shift_z) if self.model.two_sided else max(0.0, f.shift_z)
        f.shift_alarm = self.use_shift and f.shift_size >= s.shift_z
        f.resid_top = self.day.top(p.timestamp, p.sign)
        f.point_counts = self.day.point_counts(p.z, p.sign, f.resid_top)
        f.cusum = self.cusum.test(p.zt, p.sign, not idle)
        if self.model.count_scan and s.reports_scan_z > 0:
            mean = max(p.base_y, 0.0)
            f.scan_z, f.scan_count = self.scan.test(
                p.timestamp, p.value, mean, self._dispersion(), p.tail, idle
            )
        if self.model.novelty:
            others = (
                f.cusum >= s.cusum_h or f.range_break or f.shift_alarm or p.sign * p.zt >= s.z_alarm
            )
            f.novel = self.novelty.gate(f.novel, others, p.z, p.sign, f.resid_top)
        return f

    def _backed(self, f: _Findings) -> bool:
        """Whether a test other than the single point alarms."""
        s = self.settings
        return (
            f.cusum >= s.cusum_h
            or f.range_break
            or f.novel
            or f.shift_alarm
            or (s.reports_scan_z > 0 and f.scan_z >= s.reports_scan_z)
        )

    def _spike_evidence(self, p: _Point, f: _Findings, backed: bool) -> float:
        """The point, CUSUM, range/novelty and scan tests combined: 1 is an alarm.

        A point alarm that does not count alone stays just short of it.
        """
        s = self.settings
        point_evidence = p.sign * p.zt / s.z_alarm
        if not (f.point_counts or backed):
            point_evidence = min(point_evidence, 0.999)
        return max(
            point_evidence,
            f.cusum / s.cusum_h,
            1.0 if f.range_break or f.novel else 0.0,
            f.scan_z / s.reports_scan_z if s.reports_scan_z > 0 else 0.0,
        )

    def _needs_backing(self, tail: float) -> bool:
        """On a bursty count stream (tail factor >= `reports_confirm_tail`) a point alarm
        alerts only if another test backs it."""
        confirm = self.settings.reports_confirm_tail
        return self.model.confirm_lone_points and 0 < confirm <= tail

    def _learn_point(self, p: _Point, f: _Findings, suppressed: bool) -> None:
        """Everything the detector remembers takes the judged point."""
        s = self.settings
        self.n += 1
        self.last_ts = p.timestamp
        if self.alerts.active:
            self.alerts.hold(p.zt)
        else:
            self.cusum.learn_autocorr(p.dt, p.z, self.n)
            if p.warm and not suppressed:
                self.tail.learn(p.dt, abs(p.z) if self.model.two_sided else p.z, p.tail)
        self.range.learn(p.x)
        self.day.learn(p.z)
        if f.seasoned and not self.alerts.active:
            self.shift.learn(decay(p.dt, s.shift_half_life_s))
        if self.model.novelty:
            self.novelty.learn(p.x, f.novelty_dist, normal=not self.alerts.active)
        # A spike must not teach the baseline that it is normal; past `freeze_max_s`
        # it is taken as a new normal and learnt (winsorised) like any other point.
        # While the last hours already depart from the slow baseline (|shift z| at
        # least `shift_hold_z`), the drift and the seasonal profile in use hold, so
        # the fast baseline does not chase the departure the point and CUSUM tests
        # should measure.
        if not self.alerts.active or p.timestamp - self.alerts.spike_start > s.freeze_max_s:
            departing = self.model.shift_holds and abs(f.shift_z) >= s.shift_hold_z > 0
            self._learn_baseline(p, abs(p.z) <= s.season_learn_max_z, departing)
        if self.model.climb_rule:
            self.last_rank = p.value

    def _learn_baseline(self, p: _Point, season_ok: bool, departing: bool) -> None:
        """Level, drift, spread, dispersion and seasons take the point (winsorised once warm).

        Points far from the baseline (|z| > season_learn_max_z) move level and
        drift but not the seasonal slots. During a sustained departure the
        drift and the profile the baseline uses hold; the other profile, not in
        use yet, still learns, so a weekly pattern the daily baseline departs
        from is known when weekly takes over.
        """
        s = self.settings
        timestamp, dt = p.timestamp, p.dt
        hold_weekly = departing and p.weekly_known
        hold_daily = departing and not hold_weekly
        resid = p.x - p.base_y
        if p.warm:
            # Winsorise so a spike moves the baseline and spread by a bounded step.
            limit = s.winsor_z * p.sigma
            resid = max(-limit, min(limit, resid))
        # Plain averages while young, time-weighted EWMAs after.
        young = 1.0 / self.n
        a_level = max(young, 1.0 - decay(dt, s.level_half_life_s))
        a_drift = max(young, 1.0 - decay(dt, s.drift_half_life_s))
        a_var = max(young, 1.0 - decay(dt, s.scale_half_life_s))
        x = p.base_y + resid
        plain = self._remove_season(x, p.season)
        if season_ok or not p.warm:
            if not hold_daily:
                self.daily.update(timestamp, dt, x, self.level)
            if not hold_weekly:
                self.weekly.update(timestamp, dt, x, self.level)
        if not departing:
            self.drift += a_drift * (plain - self.level - self.drift)
        self.level += a_level * (plain - self.level)
        self.var += a_var * (resid * resid - self.var)
        if self.model.count_scan:
            lam = max(p.base_y, 0.0)
            self.excess += a_var * (resid * resid - lam - self.excess)
            self.level_sq += a_var * (lam * lam - self.level_sq)

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot; `from_state` on it gives an identical detector."""
        v = self.last_verdict
        return {
            "version": _STATE_VERSION,
            "signal": self.signal,
            "n": self.n,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "level": self.level,
            "drift": self.drift,
            "var": self.var,
            "excess": self.excess,
            "level_sq": self.level_sq,
            "last_rank": None if math.isnan(self.last_rank) else self.last_rank,
            "last_verdict": {
                "score": v.score,
                "active": v.active,
                "baseline": None if math.isnan(v.baseline) else v.baseline,
                "started": v.started,
            },
            "daily": self.daily.to_state(),
            "weekly": self.weekly.to_state(),
            "shift": self.shift.to_state(),
            **self.tail.to_state(),
            **self.range.to_state(),
            **self.cusum.to_state(),
            **self.day.to_state(),
            **self.scan.to_state(),
            **self.novelty.to_state(),
            **self.alerts.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], settings: DetectionSettings) -> SpikeDetector:
        """Rebuild a detector from `to_state` output, with the given settings."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported detector state version {state.get('version')!r}")
        det = cls(str(state["signal"]), settings)
        det.n = int(state["n"])
        det.first_ts = float(state["first_ts"])
        det.last_ts = float(state["last_ts"])
        det.level = float(state["level"])
        det.drift = float(state["drift"])
        det.var = float(state["var"])
        det.excess = float(state["excess"])
        det.level_sq = float(state["level_sq"])
        rank = state["last_rank"]
        det.last_rank = math.nan if rank is None else float(rank)
        v = state["last_verdict"]
        baseline = math.nan if v["baseline"] is None else float(v["baseline"])
        det.last_verdict = SpikeVerdict(
            float(v["score"]), bool(v["active"]), baseline, bool(v["started"])
        )
        det.daily.load_state(state["daily"])
        det.weekly.load_state(state["weekly"])
        if "shift" in state:
            det.shift.load_state(state["shift"])
        for part in (det.tail, det.range, det.cusum, det.day, det.scan, det.novelty, det.alerts):
            part.load_state(state)
        return det


def detector_for(signal: str, settings: DetectionSettings) -> SpikeDetector:
    """A fresh detector for a kind of `BACKTEST_SIGNALS`."""
    return SpikeDetector(signal, settings)
