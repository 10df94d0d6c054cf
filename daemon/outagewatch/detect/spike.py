"""Online spike detection: one observation at a time, O(1) work, serialisable state.

The baseline is a de-seasonalised EWMA level plus a seasonal deviation (hour of
week once two weeks are seen, hour of day before that). Residuals are scaled by an
EWMA spread floored per signal (negative-binomial variance for counts), and the
resulting z is divided by a per-stream tail factor: a peaks-over-threshold
(generalised Pareto) fit of the stream's own normal z, so a stream whose ordinary
bursts are wild needs a wilder burst to alert (report counts fit it over two
thresholds and take the higher alarm level). Three tests then look for a spike
(upward for the daemon's signals, either way for `generic`): a single-point z, a
CUSUM of capped z, and a break of the recently seen range. Report counts add a
short scan (the exact negative-binomial tail of the counts summed over the last
10 minutes, `counts.py`), and on a bursty report stream (tail factor at least
`reports_confirm_tail`) a point alarm alerts only with another test backing it
(a burst that lasts shows in the scan), and a level-shift test (`shift.py`:
the excess count against the slow baseline over the last 3 and 24 hours,
against its usual spread); `generic` adds a contextual nearest-neighbour
novelty test (`novelty.py`, O(novelty_window) per point, a fixed few hundred
contexts) and the level-shift test either way over 6 and 24 hours (while it
departs, the fast drift and the seasonal profile in use hold, so they do not
chase it).

An *alert* (`SpikeVerdict.started`) is the onset of a spike: any test fires while
no spike is active and no cooldown runs. A cooldown of `cooldown_s` follows every
alert; only an escalation beyond the alerted spike's peak (in calibrated z,
against the baseline of its own time) may alert again inside it; the alarms it
suppresses do not teach the tail. `active` is the held state (the gauge): from
the alert until z falls back to `z_exit`. Time comes only from the observation
timestamps, so spacing may be arbitrary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from outagewatch.detect.counts import count_z
from outagewatch.detect.novelty import ContextNovelty
from outagewatch.detect.settings import DAY, HOUR, DetectionSettings
from outagewatch.detect.shift import LevelShift

SIGNALS: Final = ("reports", "latency", "failure_ratio", "rank")
# Accepted by `backtest --signal` as well: any metric, a change either way is news.
BACKTEST_SIGNALS: Final = (*SIGNALS, "generic")
WEEK: Final = 7 * DAY
# Version 4 gained the residual window and tail cluster keys (issue 7nab4),
# the level shift's hourly slots (issue 7gen) and the novelty run (issue
# 7gen4); a version-4 state without them restores with them empty. The
# alerted peak is a calibrated z since issue 7nab13 (`alert_peak_z`); an older
# state's raw `alert_peak` is ignored and the peak restores as 0, so an alarm
# inside that cooldown may alert once more. The pending lone alarm of issue
# 7nab5 is gone: its keys in an older state are ignored.
_STATE_VERSION: Final = 4
_RESID_SLOTS: Final = 24


@dataclass(frozen=True, slots=True)
class _Point:
    """One observation as measured against the baseline, before any test."""

    timestamp: float
    value: float
    x: float  # the value in the unit the statistics run in (-ln rank for rank)
    dt: float
    season: float
    base_y: float
    sigma: float
    z: float
    warm: bool
    tail: float
    zt: float  # z divided by the stream's tail factor
    sign: float  # the direction judged: +1, or -1 on generic below the baseline


@dataclass(frozen=True, slots=True)
class SpikeVerdict:
    """What the detector concluded about one observation.

    `score` is 0..1 with 0.5 where a test reaches its alarm level; `started` is the
    alert decision, true only on the observation that begins a new spike (this is
    what pages and what `outagewatch_spikes_total` counts); `active` is the held
    state from that alert until the value is back near the baseline (exported as a
    gauge); `baseline` is the expected value in the signal's own unit.
    """

    score: float
    active: bool
    baseline: float
    started: bool


class _Peaks:
    """Normal z's exceedances of one threshold: decayed count, sum and sum of squares of
    the excesses."""

    __slots__ = ("count", "excess", "excess_sq", "u")

    def __init__(self, u: float) -> None:
        self.u = u
        self.count = 0.0
        self.excess = 0.0
        self.excess_sq = 0.0

    def decay(self, keep: float) -> None:
        self.count *= keep
        self.excess *= keep
        self.excess_sq *= keep

    def add(self, z: float, cap: float) -> None:
        """Count z if it exceeds the threshold (its excess capped at `cap`)."""
        if z <= self.u:
            return
        excess = max(0.0, min(z, cap) - self.u)
        self.count += 1.0
        self.excess += excess
        self.excess_sq += excess * excess

    def to_state(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}count": self.count,
            f"{prefix}excess": self.excess,
            f"{prefix}excess_sq": self.excess_sq,
        }

    def load_state(self, state: dict[str, Any], prefix: str) -> None:
        """Restore `to_state` keys; missing ones (an older state) restore empty.

        An older state's declustering keys (`last`, `cluster`) are ignored.
        """
        self.count = float(state.get(f"{prefix}count", 0.0))
        self.excess = float(state.get(f"{prefix}excess", 0.0))
        self.excess_sq = float(state.get(f"{prefix}excess_sq", 0.0))


def _decay(dt: float, half_life: float) -> float:
    """Weight left on the past after `dt` seconds for an EWMA of this half-life."""
    return math.exp(-math.log(2.0) * dt / half_life)


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
    """Spike detector for one signal of one service.

    `signal` is one of `BACKTEST_SIGNALS`: the daemon's `SIGNALS` detect upward
    spikes only (for `rank` the input is the chart rank, 1 is the top, and a spike
    is a climb: numerically lower rank); `generic` (backtests of arbitrary metrics)
    is additive, two-sided and has no signal-specific floors.
    """

    def __init__(self, signal: str, settings: DetectionSettings) -> None:
        """Create a detector with no history."""
        if signal not in BACKTEST_SIGNALS:
            raise ValueError(
                f"unknown signal {signal!r}; expected one of {', '.join(BACKTEST_SIGNALS)}"
            )
        self.signal = signal
        self.settings = settings
        # Report volumes rise and fall by a factor through the day and week.
        self.multiplicative = signal == "reports"
        self.two_sided = signal == "generic"
        self.daily = SeasonalProfile(
            DAY, HOUR, settings.daily_min_days, settings.season_memory_periods
        )
        self.weekly = SeasonalProfile(
            WEEK, HOUR, settings.weekly_min_weeks, settings.season_memory_periods
        )
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
        self.hi = 0.0
        self.lo = 0.0
        self.cusum_up = 0.0
        self.cusum_down = 0.0
        # Counts: recent (timestamp, count, baseline) of normal points for the short scan.
        self.recent: list[tuple[float, float, float]] = []
        # Contextual novelty: generic only (on Twitter counts it adds false alarms).
        self.use_novelty = signal == "generic"
        # Direction of the previous point's novelty alarm (0: none), so a run of
        # novel contexts is judged once, at its first.
        self.novel_run = 0.0
        self.novelty = ContextNovelty(
            settings.novelty_k,
            settings.novelty_window,
            settings.novelty_history,
            settings.novelty_floor,
        )
        # Level shift: on generic a sustained change either way is news; on
        # reports a surge of hours (a news event, a slow outage) that no single
        # 5-minute count shows.
        windows = settings.shift_windows_s
        if signal == "reports":
            windows = settings.reports_shift_windows_s
        self.use_shift = signal in ("generic", "reports") and settings.shift_z > 0 and bool(windows)
        # The hold of the drift and season during a shift (issue 7gen2) is generic's.
        self.shift_holds = signal == "generic"
        self.shift = LevelShift(windows, settings.winsor_z)
        # Lag-1 autocorrelation of normal z: EWMAs of z_t * z_(t-1) and z_t^2 (winsorised).
        self.z_prev = 0.0
        self.z_lag = 0.0
        self.z_sq = 0.0
        # Tail calibration: the (decayed) time normal points covered, their peaks over tail_u.
        self.tail_time = 0.0
        self.peaks = _Peaks(settings.tail_u)
        # The same peaks over the higher threshold tail_u_high (reports): the
        # generalised Pareto is a limit for high thresholds, and over tail_u a
        # near-Gaussian body can hide a heavy far tail.
        self.use_tail_high = signal == "reports" and settings.tail_u_high > 0
        self.peaks_high = _Peaks(settings.tail_u_high)
        # Residual extremes (in scales) per slot of the last point_range_window_s.
        self.resid_hi = [-math.inf] * _RESID_SLOTS
        self.resid_lo = [math.inf] * _RESID_SLOTS
        self.resid_slot = 0
        self.active = False
        self.spike_start = 0.0
        self.alert_sign = 0.0
        # The alerted spike's largest calibrated z, in the alert's direction.
        self.alert_peak_z = 0.0
        self.cooldown_until = -math.inf
        self.last_rank = math.nan
        self.last_verdict = SpikeVerdict(0.0, False, math.nan, False)

    # Signal-specific pieces: the unit the statistics run in, and the floors.

    def _transform(self, value: float) -> float:
        # Rank climbs are multiplicative (200 -> 100 is like 20 -> 10): work on -ln(rank).
        if self.signal == "rank":
            return -math.log(max(value, 1.0))
        return value

    def _untransform(self, y: float) -> float:
        if self.signal == "rank":
            return math.exp(-y)
        return y

    def _dispersion(self) -> float:
        """Negative-binomial dispersion of report counts (variance lambda + phi lambda^2)."""
        phi = self.settings.reports_dispersion
        if self.level_sq > 0:
            phi = max(phi, self.excess / self.level_sq)
        return phi

    def _scale(self, baseline: float) -> float:
        s = self.settings
        if self.signal == "reports":
            lam = max(baseline, 0.0)
            phi = self._dispersion()
            # Counts: negative-binomial spread at this level, never below one report.
            return max(1.0, math.sqrt(lam + phi * lam * lam))
        spread = math.sqrt(self.var)
        if self.signal == "rank":
            return max(spread, s.rank_min_log_scale)
        if self.signal == "generic":
            return max(spread, s.min_relative_scale * abs(baseline), 1e-9)
        absolute = s.latency_min_scale_s if self.signal == "latency" else s.failure_ratio_min_scale
        return max(spread, absolute, s.min_relative_scale * abs(baseline))

    def _worth_alerting(self, value: float, baseline: float, current: float) -> bool:
        s = self.settings
        if self.signal == "reports":
            # A handful of reports is not an outage, however quiet the baseline:
            # `value` is the count (or the short scan's total) that alarmed.
            return value >= s.reports_min_count and current >= s.reports_min_ratio * baseline
        if self.signal == "failure_ratio":
            return value >= s.failure_ratio_min_value
        return True

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

    def _seasonal(self, timestamp: float) -> float:
        """Factor (counts) or offset (others) of this hour; neutral while unknown."""
        weekly = self.weekly.expected(timestamp, self.multiplicative)
        if weekly is not None:
            return weekly
        daily = self.daily.expected(timestamp, self.multiplicative)
        if daily is not None:
            return daily
        return 1.0 if self.multiplicative else 0.0

    def _season_known(self, timestamp: float) -> bool:
        return (
            self.weekly.expected(timestamp, self.multiplicative) is not None
            or self.daily.expected(timestamp, self.multiplicative) is not None
        )

    def _apply_season(self, level: float, season: float) -> float:
        return level * season if self.multiplicative else level + season

    def _remove_season(self, x: float, season: float) -> float:
        if not self.multiplicative:
            return x - season
        # A near-zero factor would blow one quiet-hour count up into a huge level.
        return x / max(season, 0.05)

    def _tail_factor(self) -> float:
        """How much heavier than the alarm level this stream's normal |z| tail runs (>= 1).

        Peaks over threshold: exceedances of `tail_u` arrive at rate r per week with
        mean excess e (exponential tail), so |z| > t happens r * exp(-(t - u) / e)
        times a week. The level reached `tail_alarms_per_week` times a week, over
        `z_alarm`, is the factor every test's z is divided by.
        """
        level = self._pot_level(self.peaks)
        if self.use_tail_high:
            # Both fits estimate the same level; where the one over the higher
            # threshold says higher, the low one was led by the body.
            level = max(level, self._pot_level(self.peaks_high))
        return max(1.0, level / self.settings.z_alarm)

    def _pot_level(self, peaks: _Peaks) -> float:
        """The z normal points pass `tail_alarms_per_week` times a week, by a Pareto tail.

        0 when there are too few exceedances to tell or they are rare enough already.
        """
        s = self.settings
        count = peaks.count
        if count < s.tail_min_exceedances or self.tail_time <= 0:
            return 0.0
        per_week = count / self.tail_time * WEEK
        if per_week <= s.tail_alarms_per_week:
            return 0.0
        m = peaks.excess / count
        v = max(peaks.excess_sq / count - m * m, 1e-12)
        # Generalised Pareto by moments; shape kept where the moments exist.
        shape = min(s.tail_max_shape, 0.5 * (1.0 - m * m / v))
        scale = 0.5 * m * (m * m / v + 1.0)
        ratio = per_week / s.tail_alarms_per_week
        if abs(shape) < 1e-6:
            return peaks.u + scale * math.log(ratio)
        return peaks.u + scale / shape * (math.pow(ratio, shape) - 1.0)

    def _scan(
        self, timestamp: float, value: float, mean: float, tail: float
    ) -> tuple[float, float]:
        """Exact tail of the counts summed over the last `reports_scan_window_s` (best window).

        Three night-time points of 4 reports against a baseline of 0.7 are each
        unremarkable, their sum of 12 against 2.1 is not. The sum of independent
        gamma-Poisson counts is near a negative binomial with the summed mean and
        dispersion phi * sum(lambda^2) / sum(lambda)^2. Returns the best calibrated z
        over the windows ending now (2 points or more) and that window's total.
        """
        s = self.settings
        cutoff = timestamp - s.reports_scan_window_s
        self.recent = [r for r in self.recent if r[0] >= cutoff][-(s.reports_scan_max_points - 1) :]
        phi = self._dispersion()
        best_z, best_count = 0.0, 0.0
        total, mean_sum, mean_sq = value, mean, mean * mean
        for _, x, lam in reversed(self.recent):
            total += x
            mean_sum += lam
            mean_sq += lam * lam
            if total > mean_sum and mean_sum > 0:
                z = count_z(total, mean_sum, phi * mean_sq / (mean_sum * mean_sum)) / tail
                if z > best_z:
                    best_z, best_count = z, total
        self.recent.append((timestamp, value, mean))
        return best_z, best_count

    def _cusum_factor(self) -> float:
        """Weight of one z in the CUSUM: sqrt((1 - rho) / (1 + rho)) for lag-1 autocorrelation rho.

        A sum of n AR(1) residuals has variance n (1 + rho) / (1 - rho), not n: a
        smooth series (temperatures, slow drifts) would otherwise climb the CUSUM
        on ordinary wander. rho is capped at `cusum_max_autocorr` so a sustained
        shift still accumulates quickly; independent noise (rho <= 0) keeps weight 1.
        """
        if self.z_sq <= 0.0:
            return 1.0
        rho = min(self.settings.cusum_max_autocorr, max(0.0, self.z_lag / self.z_sq))
        return math.sqrt((1.0 - rho) / (1.0 + rho))

    def update(self, timestamp: float, value: float) -> SpikeVerdict:
        """Take one observation and return the verdict on it.

        Non-finite values and timestamps older than the last one are ignored and
        the previous verdict is returned, so a restart replaying data is harmless.
        """
        if not (math.isfinite(value) and math.isfinite(timestamp)):
            return self.last_verdict
        if self.n and timestamp < self.last_ts:
            return self.last_verdict
        s = self.settings
        p = self._measure(timestamp, value)
        x, dt, season, base_y, z, warm, tail, zt, sign = (
            p.x, p.dt, p.season, p.base_y, p.z, p.warm, p.tail, p.zt, p.sign
        )  # fmt: skip

        range_break = self._range_test(x, base_y, dt, zt, sign)
        novel, novelty_dist = self._novelty_test(x, zt, sign)

        seasoned, shift_z = self._shift_test(timestamp, x, season)
        # generic: either way; reports: upward only.
        shift_size = abs(shift_z) if self.two_sided else max(0.0, shift_z)

        resid_top = self._resid_extreme(timestamp, sign)
        point_ok = self._point_beats_day(z, sign, resid_top)

        cooling, resuming, blocked = self._cooldown(timestamp, zt, sign)
        idle = not (self.active or blocked or not warm)
        cusum = self._cusum_test(zt, sign, not idle)
        scan_z, scan_count = self._scan_test(timestamp, value, base_y, tail, idle)
        if self.use_novelty:
            others = (
                cusum >= s.cusum_h
                or range_break
                or (self.use_shift and shift_size >= s.shift_z)
                or sign * zt >= s.z_alarm
            )
            novel = self._lone_novelty_gate(novel, others, z, sign, resid_top)
        backed = (
            cusum >= s.cusum_h
            or range_break
            or novel
            or (self.use_shift and shift_size >= s.shift_z)
            or (s.reports_scan_z > 0 and scan_z >= s.reports_scan_z)
        )
        spike_evidence = self._spike_evidence(
            sign * zt, point_ok or backed, cusum, range_break or novel, scan_z
        )
        shift_evidence = shift_size / s.shift_z if self.use_shift else 0.0
        evidence = max(spike_evidence, shift_evidence)
        score = evidence / (1.0 + evidence) if evidence > 0 else 0.0

        baseline = self._untransform(base_y)
        alarm = warm and (
            evidence >= 1.0 or (self.signal == "rank" and self._rank_rule(value, timestamp))
        )
        if alarm and not backed and self.signal == "reports" and 0 < s.reports_confirm_tail <= tail:
            # A bursty stream: one 5-minute burst is its ordinary noise. A burst
            # that lasts shows in the count scan of the next points (calibrated
            # by the same tail), a new maximum in the range break.
            alarm = False
        # An alarm the cooldown suppresses is a repeat of the alerted incident,
        # not a normal point: like the alert's own points, it does not teach the tail.
        suppressed = alarm and blocked and not self.active
        started = self._alert_step(
            timestamp,
            zt,
            sign,
            alarm=alarm,
            resuming=resuming and spike_evidence >= 1.0,
            # The level shift does not escalate: inside the cooldown its window
            # mean is the same departure, a point beyond the alerted one is noise.
            may_alert=not blocked
            and not (cooling and spike_evidence < 1.0 and self.use_shift)
            and self._worth_alerting(max(value, scan_count), baseline, value),
        )

        self._learn_point(p, suppressed, seasoned, novelty_dist, shift_z)
        self.last_verdict = SpikeVerdict(score, self.active, baseline, started)
        return self.last_verdict

    def _measure(self, timestamp: float, value: float) -> _Point:
        """The point against the baseline: its z, raw and calibrated by the tail factor."""
        s = self.settings
        x = self._transform(value)
        if self.n == 0:
            self.first_ts = self.last_ts = timestamp
            self.level = self.hi = self.lo = x
        season = self._seasonal(timestamp)
        base_y = self._apply_season(self.level + self.drift, season)
        sigma = self._scale(self._untransform(base_y))
        z = (x - base_y) / sigma
        tail = self._tail_factor()
        zt = z / tail
        return _Point(
            timestamp=timestamp,
            value=value,
            x=x,
            dt=timestamp - self.last_ts,
            season=season,
            base_y=base_y,
            sigma=sigma,
            z=z,
            warm=self.n >= s.warmup_points and timestamp - self.first_ts >= s.warmup_s,
            tail=tail,
            zt=zt,
            # Upward only, except for the generic two-sided signal.
            sign=1.0 if zt >= 0 or not self.two_sided else -1.0,
        )

    def _learn_point(
        self, p: _Point, suppressed: bool, seasoned: bool, novelty_dist: float, shift_z: float
    ) -> None:
        """Everything the detector remembers takes the judged point."""
        s = self.settings
        self.n += 1
        self.last_ts = p.timestamp
        if self.active:
            self.alert_peak_z = max(self.alert_peak_z, self.alert_sign * p.zt)
        else:
            self._learn_autocorr(p.dt, p.z)
            if p.warm and not suppressed:
                self._learn_tail(p.dt, p.z if not self.two_sided else abs(p.z), p.tail)
        self._learn_tests(p.dt, p.x, p.z, seasoned, novelty_dist)
        # A spike must not teach the baseline that it is normal; past `freeze_max_s`
        # it is taken as a new normal and learnt (winsorised) like any other point.
        # While the last hours already depart from the slow baseline (|shift z| at
        # least `shift_hold_z`), the drift and the seasonal profile in use hold, so
        # the fast baseline does not chase the departure the point and CUSUM tests
        # should measure.
        if not self.active or p.timestamp - self.spike_start > s.freeze_max_s:
            departing = self.shift_holds and abs(shift_z) >= s.shift_hold_z > 0
            season_ok = abs(p.z) <= s.season_learn_max_z
            self._learn(
                p.timestamp, p.dt, p.x, p.base_y, p.season, p.sigma, p.warm, season_ok, departing
            )
        if self.signal == "rank":
            self.last_rank = p.value

    def _cooldown(self, timestamp: float, zt: float, sign: float) -> tuple[bool, bool, bool]:
        """(cooling, resuming, blocked): where the point stands to the last alert.

        A repeat inside the cooldown is blocked, an escalation beyond the
        alerted spike's peak is not. Both are measured against the baseline of
        their own time, in calibrated scales: on a daily cycle raw values are
        not comparable, and a night outage must escalate past a daytime false
        alarm's peak. generic: an alarm the same way within `resume_s` of the
        alert is the same incident (resuming, blocked too).
        """
        cooling = timestamp < self.cooldown_until
        escalating = sign == self.alert_sign and sign * zt > self.alert_peak_z
        resuming = (
            sign == self.alert_sign
            and self.two_sided
            and timestamp - self.spike_start <= self.settings.resume_s
        )
        return cooling, resuming, cooling and (resuming or not escalating)

    def _scan_test(
        self, timestamp: float, value: float, base_y: float, tail: float, idle: bool
    ) -> tuple[float, float]:
        """Count scan (reports): (calibrated z, window count); its memory clears while not idle."""
        if not (self.signal == "reports" and self.settings.reports_scan_z > 0):
            return 0.0, 0.0
        if not idle:
            self.recent.clear()
            return 0.0, 0.0
        return self._scan(timestamp, value, max(base_y, 0.0), tail)

    def _spike_evidence(
        self, signed_zt: float, point_counts: bool, cusum: float, flagged: bool, scan_z: float
    ) -> float:
        """The point, CUSUM, range/novelty and scan tests combined: 1 is an alarm.

        A point alarm that does not count alone (`point_counts` false) stays
        just short of it.
        """
        s = self.settings
        point_evidence = signed_zt / s.z_alarm
        if not point_counts:
            point_evidence = min(point_evidence, 0.999)
        return max(
            point_evidence,
            cusum / s.cusum_h,
            1.0 if flagged else 0.0,
            scan_z / s.reports_scan_z if s.reports_scan_z > 0 else 0.0,
        )

    def _alert_step(
        self,
        timestamp: float,
        zt: float,
        sign: float,
        *,
        alarm: bool,
        resuming: bool,
        may_alert: bool,
    ) -> bool:
        """The alert state machine: idle -> alerted (active) -> idle at `z_exit`.

        While idle, an alarm either resumes the spike alerted last (held again,
        not alerted: spike_start, and so the freeze, stay the first alert's) or,
        where cooldown and floors allow, alerts. Returns whether it alerted.
        """
        if self.active:
            if self.alert_sign * zt <= self.settings.z_exit:
                self.active = False
            return False
        if alarm and resuming:
            self.active = True
            return False
        if not (alarm and may_alert):
            return False
        self.active = True
        self.alert_sign = sign
        self.alert_peak_z = sign * zt
        self.spike_start = timestamp
        self.cooldown_until = timestamp + self.settings.cooldown_s
        self.cusum_up = self.cusum_down = 0.0
        return True

    # The named tests. Each returns its finding on the current point; the ones
    # with state (range, CUSUM, novelty run) update it here.

    def _range_test(self, x: float, base_y: float, dt: float, zt: float, sign: float) -> bool:
        """Range break: beyond the recently seen range (max, or min the other way) by a margin.

        The remembered range decays toward the baseline first, so an old peak
        stops masking.
        """
        s = self.settings
        keep = _decay(dt, s.range_half_life_s)
        self.hi = base_y + (self.hi - base_y) * keep
        self.lo = base_y + (self.lo - base_y) * keep
        margin = s.range_margin * (self.hi - self.lo)
        if sign > 0:
            return x > self.hi + margin and zt >= s.range_z_min
        return x < self.lo - margin and -zt >= s.range_z_min

    def _novelty_test(self, x: float, zt: float, sign: float) -> tuple[bool, float]:
        """Contextual novelty (generic): (novel, nearest-neighbour distance).

        Novel: a context farther from every stored one than any recent normal
        point's was, with the calibrated z agreeing on the direction.
        """
        s = self.settings
        if not (self.use_novelty and s.novelty_ratio > 0):
            return False, 0.0
        ratio, distance = self.novelty.ratio(x, self.hi - self.lo)
        return ratio >= s.novelty_ratio and sign * zt >= s.novelty_z_min, distance

    def _shift_test(self, timestamp: float, x: float, season: float) -> tuple[bool, float]:
        """Level shift: (fed, window-mean z) of the residual against the slow baseline.

        Fed once a season is known (before, the residuals would carry the daily
        cycle and inflate the spread). For counts the residual is the excess
        count itself, whose window mean is the excess of reports over the window:
        scaling it by a dispersion estimated from the same bursts would hide them
        (issue 7nab11).
        """
        if not (self.use_shift and self._season_known(timestamp)):
            return False, 0.0
        return True, self.shift.observe(timestamp, x - self._apply_season(self.level, season))

    def _point_beats_day(self, z: float, sign: float, resid_top: float | None) -> bool:
        """The point test alone must also beat the last day's largest residual by a margin."""
        margin = self.settings.point_range_margin
        return margin <= 0 or resid_top is None or sign * z > resid_top + margin * abs(resid_top)

    def _cusum_test(self, zt: float, sign: float, reset: bool) -> float:
        """CUSUM of capped, autocorrelation-weighted calibrated z; the sum the point's way."""
        s = self.settings
        if reset:
            self.cusum_up = self.cusum_down = 0.0
        else:
            zc = zt * self._cusum_factor()
            self.cusum_up = max(0.0, self.cusum_up + min(zc, s.z_alarm) - s.cusum_k)
            if self.two_sided:
                self.cusum_down = max(0.0, self.cusum_down + min(-zc, s.z_alarm) - s.cusum_k)
        return self.cusum_up if sign > 0 else self.cusum_down

    def _lone_novelty_gate(
        self, novel: bool, others: bool, z: float, sign: float, resid_top: float | None
    ) -> bool:
        """A novelty alarm no other test backs counts only on its run's first novel
        context and beyond the day's largest residual (`novelty_lone_gate`)."""
        run, self.novel_run = self.novel_run, sign if novel else 0.0
        if not (novel and not others and self.settings.novelty_lone_gate):
            return novel
        taller = resid_top is None or sign * z > resid_top
        return run != sign and taller

    def _learn_tests(
        self, dt: float, x: float, z: float, seasoned: bool, novelty_dist: float
    ) -> None:
        """The tests' own memories take the point: range, the day's residuals,
        the level shift's normal spread and the novelty's contexts (the last two
        as normal only while no spike is held)."""
        self.hi = max(self.hi, x)
        self.lo = min(self.lo, x)
        slot = self.resid_slot % _RESID_SLOTS
        self.resid_hi[slot] = max(self.resid_hi[slot], z)
        self.resid_lo[slot] = min(self.resid_lo[slot], z)
        if seasoned and not self.active:
            self.shift.learn(_decay(dt, self.settings.shift_half_life_s))
        if self.use_novelty:
            self.novelty.learn(x, novelty_dist, normal=not self.active)

    def _resid_extreme(self, timestamp: float, sign: float) -> float | None:
        """Largest residual (sign-adjusted) over the last point_range_window_s, None if none."""
        slot_s = self.settings.point_range_window_s / _RESID_SLOTS
        cur = int(timestamp // slot_s)
        gap = cur - self.resid_slot
        if gap > 0:
            for k in range(1, min(gap, _RESID_SLOTS) + 1):
                i = (self.resid_slot + k) % _RESID_SLOTS
                self.resid_hi[i] = -math.inf
                self.resid_lo[i] = math.inf
            self.resid_slot = cur
        top = max(self.resid_hi) if sign > 0 else -min(self.resid_lo)
        return None if math.isinf(top) else top

    def _learn_autocorr(self, dt: float, z: float) -> None:
        s = self.settings
        zw = max(-s.winsor_z, min(s.winsor_z, z))
        a = max(1.0 / (self.n or 1), 1.0 - _decay(dt, s.scale_half_life_s))
        self.z_lag += a * (zw * self.z_prev - self.z_lag)
        self.z_sq += a * (zw * zw - self.z_sq)
        self.z_prev = zw

    def _learn_tail(self, dt: float, z: float, tail: float) -> None:
        s = self.settings
        keep = _decay(dt, s.tail_half_life_s)
        self.tail_time = self.tail_time * keep + dt
        self.peaks.decay(keep)
        self.peaks_high.decay(keep)
        # Capped so one wild point cannot lift the alarm level by much.
        cap = s.tail_cap * tail * s.z_alarm
        self.peaks.add(z, cap)
        if self.use_tail_high:
            self.peaks_high.add(z, cap)

    def _learn(
        self,
        timestamp: float,
        dt: float,
        x: float,
        base_y: float,
        season: float,
        sigma: float,
        warm: bool,
        season_ok: bool = True,
        departing: bool = False,
    ) -> None:
        # Points far from the baseline (|z| > season_learn_max_z) move level and
        # drift (winsorised) but not the seasonal slots. During a sustained
        # departure (`departing`) the drift and the profile the baseline uses
        # hold; the other profile, not in use yet, still learns, so a weekly
        # pattern the daily baseline departs from is known when weekly takes over.
        season_skip = warm and not season_ok
        hold_weekly = departing and self.weekly.expected(timestamp, self.multiplicative) is not None
        hold_daily = departing and not hold_weekly
        s = self.settings
        resid = x - base_y
        if warm:
            # Winsorise so a spike moves the baseline and spread by a bounded step.
            limit = s.winsor_z * sigma
            resid = max(-limit, min(limit, resid))
        # Plain averages while young, time-weighted EWMAs after.
        young = 1.0 / self.n
        a_level = max(young, 1.0 - _decay(dt, s.level_half_life_s))
        a_drift = max(young, 1.0 - _decay(dt, s.drift_half_life_s))
        a_var = max(young, 1.0 - _decay(dt, s.scale_half_life_s))
        x = base_y + resid
        plain = self._remove_season(x, season)
        if not season_skip:
            if not hold_daily:
                self.daily.update(timestamp, dt, x, self.level)
            if not hold_weekly:
                self.weekly.update(timestamp, dt, x, self.level)
        if not departing:
            self.drift += a_drift * (plain - self.level - self.drift)
        self.level += a_level * (plain - self.level)
        self.var += a_var * (resid * resid - self.var)
        if self.signal == "reports":
            lam = max(base_y, 0.0)
            self.excess += a_var * (resid * resid - lam - self.excess)
            self.level_sq += a_var * (lam * lam - self.level_sq)

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot; `from_state` on it gives an identical detector."""
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
            "hi": self.hi,
            "lo": self.lo,
            "cusum_up": self.cusum_up,
            "cusum_down": self.cusum_down,
            "novel_run": self.novel_run,
            "z_prev": self.z_prev,
            "z_lag": self.z_lag,
            "z_sq": self.z_sq,
            "tail_time": self.tail_time,
            **self.peaks.to_state("tail_"),
            **self.peaks_high.to_state("tail_hi_"),
            "resid_hi": [None if math.isinf(v) else v for v in self.resid_hi],
            "resid_lo": [None if math.isinf(v) else v for v in self.resid_lo],
            "resid_slot": self.resid_slot,
            "active": self.active,
            "spike_start": self.spike_start,
            "alert_sign": self.alert_sign,
            "alert_peak_z": self.alert_peak_z,
            "cooldown_until": None if math.isinf(self.cooldown_until) else self.cooldown_until,
            "last_rank": None if math.isnan(self.last_rank) else self.last_rank,
            "last_verdict": {
                "score": self.last_verdict.score,
                "active": self.last_verdict.active,
                "baseline": (
                    None if math.isnan(self.last_verdict.baseline) else self.last_verdict.baseline
                ),
                "started": self.last_verdict.started,
            },
            "daily": self.daily.to_state(),
            "weekly": self.weekly.to_state(),
            "recent": [list(r) for r in self.recent],
            "novelty": self.novelty.to_state(),
            "shift": self.shift.to_state(),
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
        det.hi = float(state["hi"])
        det.lo = float(state["lo"])
        det.cusum_up = float(state["cusum_up"])
        det.cusum_down = float(state["cusum_down"])
        det.novel_run = float(state.get("novel_run", 0.0))
        det.z_prev = float(state["z_prev"])
        det.z_lag = float(state["z_lag"])
        det.z_sq = float(state["z_sq"])
        det.tail_time = float(state["tail_time"])
        det.peaks.load_state(state, "tail_")
        det.peaks_high.load_state(state, "tail_hi_")
        for key, empty in (("resid_hi", -math.inf), ("resid_lo", math.inf)):
            values = state.get(key, [None] * _RESID_SLOTS)
            if len(values) != _RESID_SLOTS:
                raise ValueError(f"detector state {key!r} has {len(values)} slots")
            setattr(det, key, [empty if v is None else float(v) for v in values])
        det.resid_slot = int(state.get("resid_slot", 0))
        det.active = bool(state["active"])
        det.spike_start = float(state["spike_start"])
        det.alert_sign = float(state["alert_sign"])
        det.alert_peak_z = float(state.get("alert_peak_z", 0.0))
        cooldown = state["cooldown_until"]
        det.cooldown_until = -math.inf if cooldown is None else float(cooldown)
        rank = state["last_rank"]
        det.last_rank = math.nan if rank is None else float(rank)
        v = state["last_verdict"]
        baseline = math.nan if v["baseline"] is None else float(v["baseline"])
        det.last_verdict = SpikeVerdict(
            float(v["score"]), bool(v["active"]), baseline, bool(v["started"])
        )
        det.daily.load_state(state["daily"])
        det.weekly.load_state(state["weekly"])
        det.recent = [(float(t), float(x), float(lam)) for t, x, lam in state["recent"]]
        det.novelty.load_state(state["novelty"])
        if "shift" in state:
            det.shift.load_state(state["shift"])
        return det


def detector_for(signal: str, settings: DetectionSettings) -> SpikeDetector:
    """A fresh detector for `signal` (reports, latency, failure_ratio, rank or generic)."""
    return SpikeDetector(signal, settings)
