"""Detectors: pure functions of observations, no I/O, serialisable state."""

from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import SIGNALS, SpikeDetector, SpikeVerdict, detector_for

__all__ = ["SIGNALS", "DetectionSettings", "SpikeDetector", "SpikeVerdict", "detector_for"]
