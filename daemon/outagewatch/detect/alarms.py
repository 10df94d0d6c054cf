"""The spike detector's named tests and its alert state machine, each with its own state.

Every test takes the current point as measured against the baseline (`spike.py`)
and says whether, or how strongly, it alarms; the ones with a memory learn the
point afterwards. Their saved state is flat keys of the detector's state (the
keys are those of state version 4, so a saved detector restores unchanged).
The level shift is in `shift.py`, the contextual novelty's search in
`novelty.py`, the negative-binomial tail in `counts.py`.
"""

from __future__ import annotations

import math
from typing import Any, Final

from outagewatch.detect.counts import count_z
from outagewatch.detect.novelty import ContextNovelty
from outagewatch.detect.settings import DAY, DetectionSettings

WEEK: Final = 7 * DAY
RESID_SLOTS: Final = 24
_LN2: Final = math.log(2.0)


def decay(dt: float, half_life: float) -> float:
    """Weight left on the past after `dt` seconds for an EWMA of this half-life."""
    return math.exp(-_LN2 * dt / half_life)


class Peaks:
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


class TailCalibration:
    """Per-stream tail factor (>= 1): how much heavier than `z_alarm` normal |z| runs.

    Peaks over threshold: exceedances of `tail_u` arrive at rate r per week
    with mean excess e, so z > t happens r * exp(-(t - u) / e) times a week
    (generalised Pareto by moments in general). The level normal points pass
    `tail_alarms_per_week` times a week, over `z_alarm`, is the factor every
    test's z is divided by. With `far` (report counts) the same fit is made
    over `tail_u_high` too and the higher level counts: over a low threshold a
    near-Gaussian body can hide a heavy far tail.
    """

    def __init__(self, s: DetectionSettings, far: bool) -> None:
        self.s = s
        self.far = far and s.tail_u_high > 0
        self.time = 0.0  # decayed time normal points covered
        self.peaks = Peaks(s.tail_u)
        self.peaks_high = Peaks(s.tail_u_high)

    def factor(self) -> float:
        """The tail factor now."""
        level = self._level(self.peaks)
        if self.far:
            level = max(level, self._level(self.peaks_high))
        return max(1.0, level / self.s.z_alarm)

    def _level(self, peaks: Peaks) -> float:
        """The z normal points pass `tail_alarms_per_week` times a week; 0 if unknown or rare."""
        s = self.s
        count = peaks.count
        if count < s.tail_min_exceedances or self.time <= 0:
            return 0.0
        per_week = count / self.time * WEEK
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

    def learn(self, dt: float, z: float, factor: float) -> None:
        """A normal, warm point's z (|z| on two-sided streams) joins the fit."""
        s = self.s
        keep = decay(dt, s.tail_half_life_s)
        self.time = self.time * keep + dt
        self.peaks.decay(keep)
        self.peaks_high.decay(keep)
        # Capped so one wild point cannot lift the alarm level by much.
        cap = s.tail_cap * factor * s.z_alarm
        self.peaks.add(z, cap)
        if self.far:
            self.peaks_high.add(z, cap)

    def to_state(self) -> dict[str, Any]:
        return {
            "tail_time": self.time,
            **self.peaks.to_state("tail_"),
            **self.peaks_high.to_state("tail_hi_"),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.time = float(state["tail_time"])
        self.peaks.load_state(state, "tail_")
        self.peaks_high.load_state(state, "tail_hi_")


class RangeTest:
    """Range break: beyond the recently seen range (max, or min downward) by a margin.

    The remembered range decays toward the baseline (half-life
    `range_half_life_s`), so an old peak stops masking; it alarms beyond it by
    `range_margin` of the range with the calibrated z at least `range_z_min`.
    """

    def __init__(self, s: DetectionSettings) -> None:
        self.s = s
        self.hi = 0.0
        self.lo = 0.0

    def test(self, x: float, base_y: float, dt: float, zt: float, sign: float) -> bool:
        s = self.s
        keep = decay(dt, s.range_half_life_s)
        self.hi = base_y + (self.hi - base_y) * keep
        self.lo = base_y + (self.lo - base_y) * keep
        margin = s.range_margin * (self.hi - self.lo)
        if sign > 0:
            return x > self.hi + margin and zt >= s.range_z_min
        return x < self.lo - margin and -zt >= s.range_z_min

    def learn(self, x: float) -> None:
        self.hi = max(self.hi, x)
        self.lo = min(self.lo, x)

    def to_state(self) -> dict[str, Any]:
        return {"hi": self.hi, "lo": self.lo}

    def load_state(self, state: dict[str, Any]) -> None:
        self.hi = float(state["hi"])
        self.lo = float(state["lo"])


class Cusum:
    """CUSUM of min(w zt, z_alarm) - cusum_k, alarming at `cusum_h`; downward too if two-sided.

    w = sqrt((1 - rho) / (1 + rho)), rho the lag-1 autocorrelation of normal z
    (EWMAs over `scale_half_life_s`, capped at `cusum_max_autocorr`): a sum of n
    AR(1) residuals has variance n (1 + rho) / (1 - rho), so smooth wander does
    not climb it, while independent noise (rho <= 0) keeps w = 1.
    """

    def __init__(self, s: DetectionSettings, two_sided: bool) -> None:
        self.s = s
        self.two_sided = two_sided
        self.up = 0.0
        self.down = 0.0
        self.z_prev = 0.0
        self.z_lag = 0.0
        self.z_sq = 0.0

    def weight(self) -> float:
        if self.z_sq <= 0.0:
            return 1.0
        rho = min(self.s.cusum_max_autocorr, max(0.0, self.z_lag / self.z_sq))
        return math.sqrt((1.0 - rho) / (1.0 + rho))

    def test(self, zt: float, sign: float, reset: bool) -> float:
        """Add the point (or reset while not idle); the sum the point's way."""
        s = self.s
        if reset:
            self.up = self.down = 0.0
        else:
            zc = zt * self.weight()
            self.up = max(0.0, self.up + min(zc, s.z_alarm) - s.cusum_k)
            if self.two_sided:
                self.down = max(0.0, self.down + min(-zc, s.z_alarm) - s.cusum_k)
        return self.up if sign > 0 else self.down

    def learn_autocorr(self, dt: float, z: float, n: int) -> None:
        """A normal point's z (winsorised) joins the autocorrelation EWMAs."""
        s = self.s
        zw = max(-s.winsor_z, min(s.winsor_z, z))
        a = max(1.0 / (n or 1), 1.0 - decay(dt, s.scale_half_life_s))
        self.z_lag += a * (zw * self.z_prev - self.z_lag)
        self.z_sq += a * (zw * zw - self.z_sq)
        self.z_prev = zw

    def to_state(self) -> dict[str, Any]:
        return {
            "cusum_up": self.up,
            "cusum_down": self.down,
            "z_prev": self.z_prev,
            "z_lag": self.z_lag,
            "z_sq": self.z_sq,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.up = float(state["cusum_up"])
        self.down = float(state["cusum_down"])
        self.z_prev = float(state["z_prev"])
        self.z_lag = float(state["z_lag"])
        self.z_sq = float(state["z_sq"])


class DayResiduals:
    """The last `point_range_window_s` of residuals (in scales), as 24 slot extremes.

    A point alarm no other test backs must beat the largest of them by
    `point_range_margin` of it: a daily burst as tall as one within the day is
    not news.
    """

    def __init__(self, s: DetectionSettings) -> None:
        self.s = s
        self.hi = [-math.inf] * RESID_SLOTS
        self.lo = [math.inf] * RESID_SLOTS
        self.slot = 0

    def top(self, timestamp: float, sign: float) -> float | None:
        """Largest residual (sign-adjusted) over the window; None if none. Advances the slots."""
        slot_s = self.s.point_range_window_s / RESID_SLOTS
        cur = int(timestamp // slot_s)
        gap = cur - self.slot
        if gap > 0:
            for k in range(1, min(gap, RESID_SLOTS) + 1):
                i = (self.slot + k) % RESID_SLOTS
                self.hi[i] = -math.inf
                self.lo[i] = math.inf
            self.slot = cur
        top = max(self.hi) if sign > 0 else -min(self.lo)
        return None if math.isinf(top) else top

    def point_counts(self, z: float, sign: float, top: float | None) -> bool:
        """Whether a lone point alarm on z beats the day's largest residual by the margin."""
        margin = self.s.point_range_margin
        return margin <= 0 or top is None or sign * z > top + margin * abs(top)

    def learn(self, z: float) -> None:
        slot = self.slot % RESID_SLOTS
        self.hi[slot] = max(self.hi[slot], z)
        self.lo[slot] = min(self.lo[slot], z)

    def to_state(self) -> dict[str, Any]:
        return {
            "resid_hi": [None if math.isinf(v) else v for v in self.hi],
            "resid_lo": [None if math.isinf(v) else v for v in self.lo],
            "resid_slot": self.slot,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        for key, empty in (("resid_hi", -math.inf), ("resid_lo", math.inf)):
            values = state.get(key, [None] * RESID_SLOTS)
            if len(values) != RESID_SLOTS:
                raise ValueError(f"detector state {key!r} has {len(values)} slots")
            setattr(
                self, key.removeprefix("resid_"), [empty if v is None else float(v) for v in values]
            )
        self.slot = int(state.get("resid_slot", 0))


class CountScan:
    """Count scan (report counts): the exact tail of the counts summed over the last minutes.

    Three night-time points of 4 reports against a baseline of 0.7 are each
    unremarkable, their sum of 12 against 2.1 is not. The sum of independent
    gamma-Poisson counts is near a negative binomial with the summed mean and
    dispersion phi * sum(lambda^2) / sum(lambda)^2; each window of 2 or more
    points ending now within `reports_scan_window_s` is tested, its tail turned
    into a normal z and divided by the tail factor. Alarms at `reports_scan_z`.
    """

    def __init__(self, s: DetectionSettings) -> None:
        self.s = s
        # (timestamp, count, baseline) of the recent normal points.
        self.recent: list[tuple[float, float, float]] = []

    def test(
        self, timestamp: float, value: float, mean: float, phi: float, tail: float, idle: bool
    ) -> tuple[float, float]:
        """(best calibrated z, that window's total); its memory clears while not idle."""
        s = self.s
        if not idle:
            self.recent.clear()
            return 0.0, 0.0
        cutoff = timestamp - s.reports_scan_window_s
        self.recent = [r for r in self.recent if r[0] >= cutoff][-(s.reports_scan_max_points - 1) :]
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

    def to_state(self) -> dict[str, Any]:
        return {"recent": [list(r) for r in self.recent]}

    def load_state(self, state: dict[str, Any]) -> None:
        self.recent = [(float(t), float(x), float(lam)) for t, x, lam in state["recent"]]


class NoveltyTest:
    """Contextual novelty (two-sided streams): a context farther from every stored one than
    any recent normal point's was (`novelty_ratio` times), with the calibrated z at least
    `novelty_z_min` the same way.

    Alone (no other test on the point) it counts only on a run's first novel
    context and beyond the day's largest residual (`novelty_lone_gate`): the
    next contexts overlap it and carry the same novel value, and a burst no
    taller than one within the day is not news, whatever its shape.
    """

    def __init__(self, s: DetectionSettings) -> None:
        self.s = s
        self.contexts = ContextNovelty(
            s.novelty_k, s.novelty_window, s.novelty_history, s.novelty_floor
        )
        # Direction of the previous point's novelty alarm (0: none).
        self.run = 0.0

    def test(self, x: float, span: float, zt: float, sign: float) -> tuple[bool, float]:
        """(novel, nearest-neighbour distance in units of the range `span`)."""
        s = self.s
        if s.novelty_ratio <= 0:
            return False, 0.0
        ratio, distance = self.contexts.ratio(x, span)
        return ratio >= s.novelty_ratio and sign * zt >= s.novelty_z_min, distance

    def gate(self, novel: bool, others: bool, z: float, sign: float, top: float | None) -> bool:
        """The lone-novelty gate; `others`: another test alarms on the point."""
        run, self.run = self.run, sign if novel else 0.0
        if not (novel and not others and self.s.novelty_lone_gate):
            return novel
        taller = top is None or sign * z > top
        return run != sign and taller

    def learn(self, x: float, distance: float, normal: bool) -> None:
        self.contexts.learn(x, distance, normal)

    def to_state(self) -> dict[str, Any]:
        return {"novel_run": self.run, "novelty": self.contexts.to_state()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.run = float(state.get("novel_run", 0.0))
        self.contexts.load_state(state["novelty"])


class AlertMachine:
    """The alert state machine: idle -> alerted (active) -> idle at `z_exit`.

    An alert starts a cooldown of `cooldown_s`: inside it a repeat is blocked,
    an escalation beyond the alerted spike's largest calibrated z is not. With
    `resumes` (two-sided streams) an alarm the alert's way within `resume_s`
    of it is the same incident: it makes the spike active again (held, not
    alerted, with the first alert's start).
    """

    def __init__(self, s: DetectionSettings, resumes: bool) -> None:
        self.s = s
        self.resumes = resumes
        self.active = False
        self.spike_start = 0.0
        self.sign = 0.0
        # The alerted spike's largest calibrated z, in the alert's direction.
        self.peak_z = 0.0
        self.cooldown_until = -math.inf

    def cooldown(self, timestamp: float, zt: float, sign: float) -> tuple[bool, bool, bool]:
        """(cooling, resuming, blocked): where the point stands to the last alert.

        Measured against the baseline of its own time, in calibrated scales: on
        a daily cycle raw values are not comparable, and a night outage must
        escalate past a daytime false alarm's peak.
        """
        cooling = timestamp < self.cooldown_until
        escalating = sign == self.sign and sign * zt > self.peak_z
        resuming = (
            sign == self.sign and self.resumes and timestamp - self.spike_start <= self.s.resume_s
        )
        return cooling, resuming, cooling and (resuming or not escalating)

    def step(
        self, timestamp: float, zt: float, sign: float, *, alarm: bool, resuming: bool,
        may_alert: bool,
    ) -> bool:  # fmt: skip
        """Move on one point; returns whether it alerted."""
        if self.active:
            if self.sign * zt <= self.s.z_exit:
                self.active = False
            return False
        if alarm and resuming:
            self.active = True
            return False
        if not (alarm and may_alert):
            return False
        self.active = True
        self.sign = sign
        self.peak_z = sign * zt
        self.spike_start = timestamp
        self.cooldown_until = timestamp + self.s.cooldown_s
        return True

    def hold(self, zt: float) -> None:
        """While active, the spike's peak follows the point."""
        if self.active:
            self.peak_z = max(self.peak_z, self.sign * zt)

    def to_state(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "spike_start": self.spike_start,
            "alert_sign": self.sign,
            "alert_peak_z": self.peak_z,
            "cooldown_until": None if math.isinf(self.cooldown_until) else self.cooldown_until,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore; an older state's raw `alert_peak` is ignored (the peak restores as 0)."""
        self.active = bool(state["active"])
        self.spike_start = float(state["spike_start"])
        self.sign = float(state["alert_sign"])
        self.peak_z = float(state.get("alert_peak_z", 0.0))
        cooldown = state["cooldown_until"]
        self.cooldown_until = -math.inf if cooldown is None else float(cooldown)
