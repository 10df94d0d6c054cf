"""Synthetic outage-report streams with known outages, for tests, benchmarks and demos.

Counts per 5 minutes follow a gamma-Poisson (negative binomial) law around a
baseline with a diurnal cycle and quieter weekends, so low volumes give many
zeros. Outages multiply the baseline by 2x-50x for 5-120 minutes. Everything is
driven by one seeded `random.Random`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

STEP_S = 300.0
DAY_S = 86400.0
WEEK_S = 7 * DAY_S
# A Monday 00:00 UTC, so weekdays and weekends fall where a reader expects.
EPOCH = 1_704_067_200.0


@dataclass(frozen=True, slots=True)
class Outage:
    """An injected outage: [start, end) in unix seconds and its multiple of baseline."""

    start: float
    end: float
    multiplier: float


@dataclass(frozen=True, slots=True)
class ReportStream:
    """One simulated service: its 5-minute counts and the outages injected in them."""

    rows: list[tuple[float, float]]
    outages: list[Outage]
    mean: float


def baseline_at(timestamp: float, mean: float) -> float:
    """Expected reports per 5 minutes: diurnal peak mid-afternoon, weekends at 60 %."""
    hour = (timestamp % DAY_S) / 3600.0
    diurnal = math.exp(0.8 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)) / 1.17
    weekday = int(((timestamp - EPOCH) % WEEK_S) // DAY_S)
    return mean * diurnal * (0.6 if weekday >= 5 else 1.0)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 50:
        # Normal approximation is within a count of exact here and much cheaper.
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def overdispersed_count(rng: random.Random, lam: float, shape: float) -> int:
    """Gamma-Poisson draw: mean `lam`, variance lam + lam^2 / shape."""
    return _poisson(rng, rng.gammavariate(shape, lam / shape)) if lam > 0 else 0


def simulate(
    weeks: float,
    mean: float,
    seed: int,
    *,
    outages_from_s: float | None = 2 * WEEK_S,
    outage_gap_s: tuple[float, float] = (2 * DAY_S, 5 * DAY_S),
    shape: float = 5.0,
) -> ReportStream:
    """Simulate `weeks` of 5-minute counts around `mean` reports per 5 minutes.

    With `outages_from_s` set, outages start after that much clean history, one
    at random times (2x-50x, log-uniform; 5-120
    minutes), separated by a gap drawn uniformly from `outage_gap_s` (default 2-5
    days: one service's real outages are days to weeks apart); None gives a quiet
    stream.
    """
    rng = random.Random(seed)
    end = EPOCH + weeks * WEEK_S
    outages: list[Outage] = []
    if outages_from_s is not None:
        t = EPOCH + outages_from_s
        while True:
            t += rng.uniform(*outage_gap_s)
            start = EPOCH + STEP_S * math.floor((t - EPOCH) / STEP_S)
            stop = start + STEP_S * rng.randint(1, 24)
            if stop >= end:
                break
            outages.append(Outage(start, stop, math.exp(rng.uniform(math.log(2), math.log(50)))))
            t = stop
    rows: list[tuple[float, float]] = []
    pending = iter(outages)
    current = next(pending, None)
    ts = EPOCH
    while ts < end:
        while current is not None and ts >= current.end:
            current = next(pending, None)
        lam = baseline_at(ts, mean)
        if current is not None and current.start <= ts:
            lam *= current.multiplier
        rows.append((ts, float(overdispersed_count(rng, lam, shape))))
        ts += STEP_S
    return ReportStream(rows, outages, mean)
