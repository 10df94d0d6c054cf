"""Warm start: stored report history replayed through the ``reports`` detectors.

A fresh install (or one whose saved detector state is lost) has the report
history in the store but a detector that starts from nothing and cannot alert
for 6 hours. Replay feeds the stored reports, in time order, through
``SignalDetectors.report`` and ``close`` (the live path: the same 5-minute
counts, zeros included, the same gap rule), into a detector set of its own;
``adopt`` then hands the replayed detectors to the live set. Replayed spikes
are history, not alerts: the live alert counts are kept.

The replay runs in a thread (pure Python: the event loop gets the GIL back every
few milliseconds); the catch-up to the live bucket and ``adopt`` run on the
loop, so nothing live is lost between the end of the replay and the swap. This
module is pure: reading the store is ``outagewatch/warmstart.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import REPORT_BUCKET_S, SignalDetectors, SignalStatus
from outagewatch.detect.spike import SpikeDetector

SIGNAL = "reports"


def bucket_start(now: float) -> float:
    """The start of the 5-minute report bucket holding ``now``."""
    return now - now % REPORT_BUCKET_S


@dataclass
class Replay:
    """Detectors fed the stored history of ``services`` up to ``until``."""

    signals: SignalDetectors
    services: frozenset[str]
    until: float
    reports: int = 0

    def feed(self, reports: Iterable[tuple[float, str]], until: float) -> None:
        """Reports (in time order) before ``until`` through the live path, then close there."""
        for when, service in reports:
            if when >= until:
                break
            if service in self.services:
                self.signals.report(service, when)
                self.reports += 1
        self.signals.close(until)
        self.until = max(self.until, until)


def replay(
    settings: DetectionSettings,
    services: Iterable[str],
    reports: Iterable[tuple[float, str]],
    until: float,
) -> Replay:
    """Replay ``reports`` (time order) for ``services`` into fresh detectors, up to ``until``.

    ``until`` should be a bucket start (``bucket_start(now)``): the bucket it
    opens is the live one's.
    """
    names = frozenset(services)
    signals = SignalDetectors(settings)
    signals.configure(settings, names)
    done = Replay(signals, names, until)
    done.feed(reports, until)
    return done


def adopt(live: SignalDetectors, done: Replay, older_only: bool = False) -> list[str]:
    """Give ``live`` the replayed ``reports`` detectors; returns the services adopted.

    Call when ``live``'s report buckets are no older than ``done.until`` (close
    ``live`` at now and feed ``done`` up to ``bucket_start(now)`` first): the live
    bucket then holds only reports after the replay's last point. Spike counts
    stay the live ones. ``older_only``: keep a live detector unless the replayed
    one goes back further (a live one replayed before from the same history, or
    one that ran longer than the stored history goes back, stays).
    """
    adopted = []
    for (service, signal), detector in sorted(done.signals.detectors.items()):
        if signal != SIGNAL or service not in live.services:
            continue
        current = live.detectors.get((service, signal))
        goes_back = (
            current is None
            or current.n == 0
            or detector.first_ts < current.first_ts - REPORT_BUCKET_S
        )
        if older_only and not goes_back:
            continue
        if done.signals.settings != live.settings:  # a reload meanwhile
            detector = SpikeDetector.from_state(detector.to_state(), live.settings)
        key = (service, signal)
        live.detectors[key] = detector
        status = done.signals.status.get(key)
        if status is not None:
            live.status[key] = SignalStatus(
                status.verdict, status.last_time, live.spikes_total[key]
            )
        adopted.append(service)
    return adopted


@dataclass(frozen=True)
class Warmup:
    """How far one detector is through its warm-up: points and seconds seen and needed."""

    signal: str
    points: int
    seconds: float
    need_points: int
    need_seconds: float

    @property
    def warm(self) -> bool:
        return self.points >= self.need_points and self.seconds >= self.need_seconds


def warmup(signal: str, detector: SpikeDetector | None, settings: DetectionSettings) -> Warmup:
    """The warm-up of ``detector`` (None: no point yet), by the rule ``SpikeDetector`` alerts by."""
    points = detector.n if detector is not None else 0
    seconds = max(0.0, detector.last_ts - detector.first_ts) if detector and points else 0.0
    return Warmup(signal, points, seconds, settings.warmup_points, settings.warmup_s)


def needs_replay(detector: SpikeDetector | None, first_report: float | None) -> bool:
    """True when stored history would teach the detector more than it knows.

    No detector, or the store holds reports from before the detector's first
    point (history imported after it started, or its state lost).
    """
    if first_report is None:
        return False
    if detector is None or detector.n == 0:
        return True
    return first_report < detector.first_ts - REPORT_BUCKET_S
