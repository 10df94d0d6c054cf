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
    warmup_s: float = Field(default=6 * HOUR, ge=0)
    warmup_points: int = Field(default=24, ge=1)
    # De-seasonalised level (slow, what the seasonal slots are measured from) and a
    # fast drift on top that follows the day before seasons are known and level shifts.
    level_half_life_s: float = Field(default=DAY, gt=0)
    drift_half_life_s: float = Field(default=3 * HOUR, gt=0)
    # Spread of residuals: slower than the level so one burst does not widen it much.
    scale_half_life_s: float = Field(default=DAY, gt=0)
    # Residuals are clipped at this many scales before they feed level and spread,
    # so a spike barely moves the baseline it is measured against.
    winsor_z: float = Field(default=4.0, gt=0)
    # Seasonal profiles: hour-of-day, then hour-of-week once enough weeks are seen.
    daily_min_days: int = Field(default=3, ge=1)
    weekly_min_weeks: int = Field(default=2, ge=1)
    season_memory_periods: float = Field(default=4.0, ge=1)
    # Seasonal slots learn only points within this many scales of the baseline: a
    # young slot (few periods) otherwise learns an outage's first points at once.
    season_learn_max_z: float = Field(default=3.5, gt=0)
    # Tests: a single-point z, a CUSUM on capped z, a break of the seen range.
    z_alarm: float = Field(default=6.0, gt=0)
    z_exit: float = Field(default=3.0, ge=0)
    cusum_k: float = Field(default=1.0, ge=0)
    cusum_h: float = Field(default=15.0, gt=0)
    # CUSUM increments are weighted by sqrt((1 - rho) / (1 + rho)), rho the lag-1
    # autocorrelation of normal z (capped here), so smooth wander does not add up.
    cusum_max_autocorr: float = Field(default=0.5, ge=0, lt=1)
    range_margin: float = Field(default=0.02, ge=0)
    range_z_min: float = Field(default=4.5, ge=0)
    range_half_life_s: float = Field(default=14 * DAY, gt=0)
    # Per-stream tail calibration (peaks over threshold): exceedances of z > tail_u
    # (|z| for the two-sided generic signal) and their excesses, remembered over
    # tail_half_life_s, give a generalised Pareto tail. Where that tail says normal
    # points would pass z_alarm more often than tail_alarms_per_week, every test's
    # z is divided by the factor that brings the alarm level there (never below 1).
    tail_u: float = Field(default=2.0, gt=0)
    tail_half_life_s: float = Field(default=7 * DAY, gt=0)
    tail_alarms_per_week: float = Field(default=0.5, gt=0)
    tail_min_exceedances: float = Field(default=10.0, ge=1)
    tail_max_shape: float = Field(default=0.45, ge=0, lt=0.5)
    # One point's contribution is capped at this many alarm levels.
    tail_cap: float = Field(default=2.0, gt=1)
    # reports: the same tail fitted over a second, higher threshold as well; the
    # higher alarm level of the two counts (0 = off). Over tail_u the fit is
    # dominated by the body of the distribution; a stream whose body is near
    # Gaussian but whose far tail is heavy shows it only over a higher threshold.
    tail_u_high: float = Field(default=4.0, ge=0)
    # Contextual novelty (generic): the context of the last novelty_k values is
    # compared with the last novelty_window stored contexts (O(novelty_window) per
    # point); it alarms when its nearest-neighbour distance is novelty_ratio times
    # the largest of the last novelty_history normal points' (distances in units of
    # the seen range, typical distance floored at novelty_floor) and the calibrated
    # z is at least novelty_z_min in the same direction.
    novelty_k: int = Field(default=6, ge=1)
    novelty_window: int = Field(default=600, ge=2)
    novelty_history: int = Field(default=600, ge=2)
    novelty_floor: float = Field(default=0.01, ge=0)
    novelty_ratio: float = Field(default=1.5, ge=0)
    novelty_z_min: float = Field(default=2.0)
    # generic: a novelty alarm that no other test backs (CUSUM, range break,
    # level shift, point z at z_alarm) counts only on the first novel context of
    # a run (the next contexts overlap it and carry the same novel value) and
    # only if the point is farther from the seasonal baseline than every point
    # of the last point_range_window_s: a burst no taller than one within the
    # day is not news, whatever its shape.
    novelty_lone_gate: bool = True
    # Level shift (generic and reports): the mean residual against the slow baseline (level and
    # season, no drift) over each of shift_windows_s (whole hours), divided by the
    # root mean square of that window mean over normal points (EWMA, half-life
    # shift_half_life_s), alarms at shift_z (0 = off; default the point test's
    # z_alarm). Residuals are fed once a season is known, and no verdict comes
    # before twice the longest window of them.
    shift_z: float = Field(default=6.0, ge=0)
    shift_windows_s: tuple[Annotated[float, Field(gt=0)], ...] = (6 * HOUR, DAY)
    # reports: the same test, upward, on the excess count (count minus the slow
    # baseline) over these windows (() = off on reports). The shortest is the
    # fast drift's half-life: a surge that lasts longer is followed by the drift
    # and no longer stands out to the point, scan and CUSUM tests.
    reports_shift_windows_s: tuple[Annotated[float, Field(gt=0)], ...] = (3 * HOUR, DAY)
    shift_half_life_s: float = Field(default=7 * DAY, gt=0)
    # generic: while the level shift's z is at least this (either way; 0 = off), the fast
    # drift and the seasonal profile in use do not learn: the baseline does not
    # follow a sustained departure away, the slow level still does (default:
    # `tail_u`, where a z starts to count as unusual).
    shift_hold_z: float = Field(default=2.0, ge=0)
    # A single-point z alarm that no other test backs (CUSUM, count scan, range
    # break, novelty, level shift) must also beat the largest residual (in scales, against the
    # seasonal baseline; smallest for a downward generic alarm) of the last
    # point_range_window_s by this share of it (0 = off): a stream's daily burst
    # is not news if a like one came within the day.
    point_range_margin: float = Field(default=0.1, ge=0)
    point_range_window_s: float = Field(default=DAY, gt=0)
    # Tail calibration: exceedances less than this apart count once, with the
    # cluster's largest excess (0 = off), so a sub-alarm outage of a few
    # points does not inflate the tail factor.
    tail_decluster_s: float = Field(default=900.0, ge=0)
    # The baseline does not learn from a spike for this long, then takes it as normal.
    freeze_max_s: float = Field(default=2 * HOUR, ge=0)
    # After an alert, no new alert for this long unless the calibrated z goes
    # beyond the alerted spike's largest (repeats are suppressed, escalations are not).
    cooldown_s: float = Field(default=DAY, ge=0)
    # generic: an alarm the alert's way (escalation or repeat) within this long
    # of the last alert resumes the held spike instead of alerting again (0 =
    # off): it is the same incident, and held, its points do not teach the tail
    # (default: `freeze_max_s`, the time a spike is still not taken as normal).
    resume_s: float = Field(default=2 * HOUR, ge=0)
    # Scale floors: relative to the baseline, and per signal in its own unit.
    min_relative_scale: float = Field(default=0.01, ge=0)
    # reports: negative-binomial variance lambda + phi * lambda^2, and a minimum count.
    reports_dispersion: float = Field(default=0.05, ge=0)
    # reports: a scan of the counts summed over the last reports_scan_window_s (at
    # most reports_scan_max_points points, the current one included), each window's
    # exact negative-binomial upper tail as a normal z, divided by the tail factor,
    # alarms at reports_scan_z (0 turns the scan off).
    reports_scan_z: float = Field(default=4.5, ge=0)
    reports_scan_window_s: float = Field(default=600.0, ge=0)
    reports_scan_max_points: int = Field(default=12, ge=1)
    # reports: on a stream whose tail factor is at least reports_confirm_tail (its
    # ordinary bursts clearly heavier than the count model), a point alarm alerts
    # only if another test backs it (count scan, range break, CUSUM): a lone
    # 5-minute burst is that stream's noise, a lasting one shows in the scan of
    # the next point (0 = off).
    reports_confirm_tail: float = Field(default=1.5, ge=0)
    reports_min_count: float = Field(default=5.0, ge=0)
    reports_min_ratio: float = Field(default=1.5, ge=1)
    latency_min_scale_s: float = Field(default=0.05, ge=0)
    failure_ratio_min_scale: float = Field(default=0.02, ge=0)
    failure_ratio_min_value: float = Field(default=0.1, ge=0, le=1)
    # rank: detected on -ln(rank); also a climb in places per hour or entering the top N.
    rank_min_log_scale: float = Field(default=0.1, ge=0)
    rank_climb_per_hour: float = Field(default=50.0, gt=0)
    rank_top: int = Field(default=10, ge=1)
