"""Detectors: pure functions of observations, no I/O, serialisable state."""

from outagewatch.detect import spike
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import (
    BACKTEST_SIGNALS,
    SIGNALS,
    SpikeDetector,
    SpikeVerdict,
    detector_for,
)


def compiled() -> bool:
    """Whether the per-point modules run compiled by mypyc (setup.py), not interpreted."""
    return not (spike.__file__ or "").endswith(".py")


__all__ = [
    "BACKTEST_SIGNALS",
    "SIGNALS",
    "DetectionSettings",
    "SpikeDetector",
    "SpikeVerdict",
    "compiled",
    "detector_for",
]
