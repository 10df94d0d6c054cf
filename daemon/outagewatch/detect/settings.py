"""Parameters of the spike detectors: one set for every service and signal."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

HOUR = 3600.0
DAY = 24 * HOUR


class DetectionSettings(BaseModel):
    """Spike detector parameters; embedded in the daemon config as `detection:`.

    Durations are seconds. The defaults are chosen from the properties of the
    signals (5-minute report counts, probe ratios, latencies, chart ranks), not
    fitted to any one benchmark file.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # No alert until the baseline has seen this much time and this many points.
    warmup_s: float = Field(
        default=6 * HOUR,
        ge=0,
        description="No alert until the baseline has seen this long (seconds).",
    )
    warmup_points: int = Field(
        default=24, ge=1, description="No alert until the baseline has seen this many points."
    )
    # De-seasonalised level (slow, what the seasonal slots are measured from) and a
    # fast drift on top that follows the day before seasons are known and level shifts.
    level_half_life_s: float = Field(
        default=DAY, gt=0, description="Half-life of the de-seasonalised level (seconds)."
    )
    drift_half_life_s: float = Field(
        default=3 * HOUR,
        gt=0,
        description="Half-life of the fast drift on top of the level, which follows the day before "
        "seasons are known (seconds).",
    )
    # Spread of residuals: slower than the level so one burst does not widen it much.
    scale_half_life_s: float = Field(
        default=DAY,
        gt=0,
        description="Half-life of the residuals' spread (seconds); slower than the level so one "
        "burst barely widens it.",
    )
    # Residuals are clipped at this many scales before they feed level and spread,
    # so a spike barely moves the baseline it is measured against.
    winsor_z: float = Field(
        default=4.0,
        gt=0,
        description="Residuals are clipped at this many scales before they feed level and spread.",
    )
    # Seasonal profiles: hour-of-day, then hour-of-week once enough weeks are seen.
    daily_min_days: int = Field(
        default=3, ge=1, description="Days seen before the hour-of-day profile is used."
    )
    weekly_min_weeks: int = Field(
        default=2, ge=1, description="Weeks seen before the hour-of-week profile is used."
    )
    season_memory_periods: float = Field(
        default=4.0, ge=1, description="Periods a seasonal slot remembers."
    )
    # Seasonal slots learn only points within this many scales of the baseline: a
    # young slot (few periods) otherwise learns an outage's first points at once.
    season_learn_max_z: float = Field(
        default=3.5,
        gt=0,
        description="Seasonal slots learn only points within this many scales of the baseline.",
    )
    # Tests: a single-point z, a CUSUM on capped z, a break of the seen range.
    z_alarm: float = Field(default=6.0, gt=0, description="A single point's z that alarms.")
    z_exit: float = Field(default=3.0, ge=0, description="A spike ends when z falls below this.")
    cusum_k: float = Field(
        default=1.0, ge=0, description="CUSUM allowance subtracted from each capped z."
    )
    cusum_h: float = Field(default=15.0, gt=0, description="CUSUM sum that alarms.")
    # CUSUM increments are weighted by sqrt((1 - rho) / (1 + rho)), rho the lag-1
    # autocorrelation of normal z (capped here), so smooth wander does not add up.
    cusum_max_autocorr: float = Field(
        default=0.5,
        ge=0,
        lt=1,
        description="Cap on the lag-1 autocorrelation that down-weights CUSUM increments of smooth "
        "wander.",
    )
    range_margin: float = Field(
        default=0.02, ge=0, description="Share beyond the range seen that counts as a break of it."
    )
    range_z_min: float = Field(default=4.5, ge=0, description="Least z for a range break to alarm.")
    range_half_life_s: float = Field(
        default=14 * DAY, gt=0, description="Half-life of the range seen (seconds)."
    )
    # Per-stream tail calibration (peaks over threshold): exceedances of z > tail_u
    # (|z| for the two-sided generic signal) and their excesses, remembered over
    # tail_half_life_s, give a generalised Pareto tail. Where that tail says normal
    # points would pass z_alarm more often than tail_alarms_per_week, every test's
    # z is divided by the factor that brings the alarm level there (never below 1).
    tail_u: float = Field(
        default=2.0,
        gt=0,
        description="Threshold z of the per-stream tail calibration (peaks over threshold).",
    )
    tail_half_life_s: float = Field(
        default=7 * DAY,
        gt=0,
        description="How long exceedances are remembered for the tail fit (half-life, seconds).",
    )
    tail_alarms_per_week: float = Field(
        default=0.5,
        gt=0,
        description="Alarms a week the calibrated tail allows on normal points; z is scaled down "
        "to meet it.",
    )
    tail_min_exceedances: float = Field(
        default=10.0, ge=1, description="Exceedances needed before the tail fit is used."
    )
    tail_max_shape: float = Field(
        default=0.45,
        ge=0,
        lt=0.5,
        description="Cap on the generalised Pareto shape of the tail fit.",
    )
    # One point's contribution is capped at this many alarm levels.
    tail_cap: float = Field(
        default=2.0,
        gt=1,
        description="One point's contribution is capped at this many alarm levels.",
    )
    # reports: the same tail fitted over a second, higher threshold as well; the
    # higher alarm level of the two counts (0 = off). Over tail_u the fit is
    # dominated by the body of the distribution; a stream whose body is near
    # Gaussian but whose far tail is heavy shows it only over a higher threshold.
    tail_u_high: float = Field(
        default=4.0,
        ge=0,
        description="reports: a second, higher tail threshold whose fit also counts (0 = off).",
    )
    # Contextual novelty (generic): the context of the last novelty_k values is
    # compared with the last novelty_window stored contexts (O(novelty_window) per
    # point); it alarms when its nearest-neighbour distance is novelty_ratio times
    # the largest of the last novelty_history normal points' (distances in units of
    # the seen range, typical distance floored at novelty_floor) and the calibrated
    # z is at least novelty_z_min in the same direction.
    novelty_k: int = Field(
        default=6, ge=1, description="Contextual novelty (generic): values in a context."
    )
    novelty_window: int = Field(default=600, ge=2, description="Contexts stored to compare with.")
    novelty_history: int = Field(
        default=600,
        ge=2,
        description="Normal points whose nearest-neighbour distances set the typical distance.",
    )
    novelty_floor: float = Field(
        default=0.01, ge=0, description="Floor of the typical distance, in units of the seen range."
    )
    novelty_ratio: float = Field(
        default=1.5, ge=0, description="A context this many times farther than typical is novel."
    )
    novelty_z_min: float = Field(
        default=2.0, description="Least calibrated z, the same way, for a novelty alarm."
    )
    # generic: a novelty alarm that no other test backs (CUSUM, range break,
    # level shift, point z at z_alarm) counts only on the first novel context of
    # a run (the next contexts overlap it and carry the same novel value) and
    # only if the point is farther from the seasonal baseline than every point
    # of the last point_range_window_s: a burst no taller than one within the
    # day is not news, whatever its shape.
    novelty_lone_gate: bool = Field(
        default=True,
        description="generic: a novelty alarm no other test backs counts only on a run's first "
        "novel context and beyond the day's range.",
    )
    # Level shift (generic and reports): the mean residual against the slow baseline (level and
    # season, no drift) over each of shift_windows_s (whole hours), divided by the
    # root mean square of that window mean over normal points (EWMA, half-life
    # shift_half_life_s), alarms at shift_z (0 = off; default the point test's
    # z_alarm). Residuals are fed once a season is known, and no verdict comes
    # before twice the longest window of them.
    shift_z: float = Field(
        default=6.0, ge=0, description="Level-shift test: window-mean z that alarms (0 = off)."
    )
    shift_windows_s: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(6 * HOUR, DAY), description="Level-shift windows (seconds, whole hours)."
    )
    # reports: the same test, upward, on the excess count (count minus the slow
    # baseline) over these windows (() = off on reports). The shortest is the
    # fast drift's half-life: a surge that lasts longer is followed by the drift
    # and no longer stands out to the point, scan and CUSUM tests.
    reports_shift_windows_s: tuple[Annotated[float, Field(gt=0)], ...] = Field(
        default=(3 * HOUR, DAY),
        description="reports: level-shift windows on the excess count (seconds; empty = off).",
    )
    shift_half_life_s: float = Field(
        default=7 * DAY,
        gt=0,
        description="Half-life of the normal spread of the window means (seconds).",
    )
    # generic: while the level shift's z is at least this (either way; 0 = off), the fast
    # drift and the seasonal profile in use do not learn: the baseline does not
    # follow a sustained departure away, the slow level still does (default:
    # `tail_u`, where a z starts to count as unusual).
    shift_hold_z: float = Field(
        default=2.0,
        ge=0,
        description="generic: while the level shift's z is at least this, drift and season do not "
        "learn (0 = off).",
    )
    # A single-point z alarm that no other test backs (CUSUM, count scan, range
    # break, novelty, level shift) must also beat the largest residual (in scales, against the
    # seasonal baseline; smallest for a downward generic alarm) of the last
    # point_range_window_s by this share of it (0 = off): a stream's daily burst
    # is not news if a like one came within the day.
    point_range_margin: float = Field(
        default=0.1,
        ge=0,
        description="A lone point alarm must beat the day's largest residual by this share (0 = "
        "off).",
    )
    point_range_window_s: float = Field(
        default=DAY, gt=0, description="The window of that largest residual (seconds)."
    )
    # The baseline does not learn from a spike for this long, then takes it as normal.
    freeze_max_s: float = Field(
        default=2 * HOUR,
        ge=0,
        description="The baseline does not learn from a spike for this long, then takes it as "
        "normal (seconds).",
    )
    # After an alert, no new alert for this long unless the calibrated z goes
    # beyond the alerted spike's largest (repeats are suppressed, escalations are not).
    cooldown_s: float = Field(
        default=DAY,
        ge=0,
        description="After an alert, no new alert for this long unless z goes beyond the alerted "
        "spike's largest (seconds).",
    )
    # generic: an alarm the alert's way (escalation or repeat) within this long
    # of the last alert resumes the held spike instead of alerting again (0 =
    # off): it is the same incident, and held, its points do not teach the tail
    # (default: `freeze_max_s`, the time a spike is still not taken as normal).
    resume_s: float = Field(
        default=2 * HOUR,
        ge=0,
        description="generic: an alarm within this long of the last alert resumes its spike "
        "instead of alerting again (seconds; 0 = off).",
    )
    # Scale floors: relative to the baseline, and per signal in its own unit.
    min_relative_scale: float = Field(
        default=0.01, ge=0, description="Floor of the scale, relative to the baseline."
    )
    # reports: negative-binomial variance lambda + phi * lambda^2, and a minimum count.
    reports_dispersion: float = Field(
        default=0.05,
        ge=0,
        description="reports: negative-binomial dispersion phi (variance lambda + phi lambda^2).",
    )
    # reports: a scan of the counts summed over the last reports_scan_window_s (at
    # most reports_scan_max_points points, the current one included), each window's
    # exact negative-binomial upper tail as a normal z, divided by the tail factor,
    # alarms at reports_scan_z (0 turns the scan off).
    reports_scan_z: float = Field(
        default=4.5,
        ge=0,
        description="reports: z of the windowed count scan that alarms (0 = off).",
    )
    reports_scan_window_s: float = Field(
        default=600.0, ge=0, description="reports: the scan's window (seconds)."
    )
    reports_scan_max_points: int = Field(
        default=12, ge=1, description="reports: points in a scan window at most."
    )
    # reports: on a stream whose tail factor is at least reports_confirm_tail (its
    # ordinary bursts clearly heavier than the count model), a point alarm alerts
    # only if another test backs it (count scan, range break, CUSUM): a lone
    # 5-minute burst is that stream's noise, a lasting one shows in the scan of
    # the next point (0 = off).
    reports_confirm_tail: float = Field(
        default=1.5,
        ge=0,
        description="reports: on a stream with a tail factor this high, a point alarm needs "
        "another test's backing (0 = off).",
    )
    reports_min_count: float = Field(
        default=5.0, ge=0, description="reports: least count for an alarm."
    )
    reports_min_ratio: float = Field(
        default=1.5, ge=1, description="reports: least ratio of count to baseline for an alarm."
    )
    latency_min_scale_s: float = Field(
        default=0.05, ge=0, description="latency: floor of the scale (seconds)."
    )
    failure_ratio_min_scale: float = Field(
        default=0.02, ge=0, description="failure ratio: floor of the scale."
    )
    failure_ratio_min_value: float = Field(
        default=0.1, ge=0, le=1, description="failure ratio: least value for an alarm."
    )
    # rank: detected on -ln(rank); also a climb in places per hour or entering the top N.
    rank_min_log_scale: float = Field(
        default=0.1, ge=0, description="rank: floor of the scale of -ln(rank)."
    )
    rank_climb_per_hour: float = Field(
        default=50.0, gt=0, description="rank: places climbed per hour that alarm."
    )
    rank_top: int = Field(default=10, ge=1, description="rank: entering the top N alarms.")
