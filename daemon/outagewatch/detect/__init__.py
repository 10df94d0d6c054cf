"""Detectors: pure functions of observations, no I/O, serialisable state."""

from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import (
    BACKTEST_SIGNALS,
    SIGNALS,
    SpikeDetector,
    SpikeVerdict,
    detector_for,
)

__all__ = [
    "BACKTEST_SIGNALS",
    "SIGNALS",
    "DetectionSettings",
    "SpikeDetector",
    "SpikeVerdict",
    "detector_for",
]
