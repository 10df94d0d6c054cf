"""Exact upper-tail probabilities of counts, as an equivalent normal z.

A z-score (count - mean) / spread misreads small counts: with a mean near one
report per 5 minutes the count distribution is discrete and skewed, so "z > 2"
happens far more often than the normal 2.3 % and the scale of z depends on the
level. The upper-tail probability of the observed count under a negative
binomial (gamma-Poisson) with the baseline mean and the estimated dispersion,
converted back to the normal quantile with the same tail, has the same meaning
at every level: z_eq = 4 is a 1-in-31 600 event whether the mean is 0.5 or 500.

Pure stdlib: `math.lgamma` and a continued fraction for the regularised
incomplete beta function (at most `_MAX_ITER` steps, so O(1) per call).
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Final

_MAX_ITER: Final = 300
_EPS: Final = 1e-14
_TINY: Final = 1e-300
_NORMAL: Final = NormalDist()
# Beyond this z the tail probability underflows; the equivalent z is capped here.
Z_MAX: Final = 37.0


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta (modified Lentz).

    The hot loop of the count scan: constants bound locally and |v| > tiny
    written as two comparisons (no call), the same arithmetic otherwise.
    """
    tiny, eps = _TINY, _EPS
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if d > tiny or d < -tiny else tiny)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if d > tiny or d < -tiny else tiny)
        c = 1.0 + aa / c
        if not (c > tiny or c < -tiny):
            c = tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if d > tiny or d < -tiny else tiny)
        c = 1.0 + aa / c
        if not (c > tiny or c < -tiny):
            c = tiny
        delta = d * c
        h *= delta
        if -eps < delta - 1.0 < eps:
            break
    return h


def _log_betainc_parts(a: float, b: float, x: float) -> float:
    """log of x^a (1 - x)^b / B(a, b)."""
    return (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(_log_betainc_parts(a, b, x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def nb_upper_tail(count: int, mean: float, dispersion: float) -> float:
    """P(X >= count) for a negative binomial of this mean and variance mean + dispersion * mean^2.

    Dispersion 0 is the Poisson limit (handled through a tiny dispersion, whose
    error is far below anything a detector cares about).
    """
    if count <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    r = 1.0 / max(dispersion, 1e-9)
    p = r / (r + mean)
    # P(X >= k) = I_(1-p)(k, r) for the number of failures before the r-th success.
    return betainc(float(count), r, 1.0 - p)


def tail_z(tail: float) -> float:
    """The normal quantile with this upper-tail probability (capped at +-Z_MAX)."""
    if tail <= 0.0:
        return Z_MAX
    if tail >= 1.0:
        return -Z_MAX
    return max(-Z_MAX, min(Z_MAX, -_NORMAL.inv_cdf(tail)))


def count_z(value: float, mean: float, dispersion: float) -> float:
    """Equivalent normal z of a count: the quantile of its exact negative-binomial upper tail.

    Only the upper side is exact (the detectors look for upward spikes in
    counts): a count at or below the mean gets a z of at most 0.
    """
    count = math.floor(value + 1e-9)
    if count <= mean:
        return min(0.0, value - mean)
    return max(0.0, tail_z(nb_upper_tail(count, mean, dispersion)))
