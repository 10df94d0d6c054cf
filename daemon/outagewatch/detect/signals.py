"""The daemon's spike detectors: one per (service, signal), fed from observations.

Signals (the ``signal`` label) and what feeds them:

| signal | detector | one point per |
|---|---|---|
| ``reports`` | reports | closed 5-minute bucket of counted reports (zeros included) |
| ``failure_ratio`` | failure_ratio | closed 1-minute bucket of probe runs: failed / conclusive |
| ``ttft`` | latency | chat run that saw a first token: its time to first token |
| ``latency`` | latency | chat run that answered (outcome ok): its total time |
| ``rank`` | rank | App Store chart read listing the app: its best rank over charts and countries |
| ``traffic/<query>`` | generic | run of the traffic query (``traffic:`` of a service): its value |

Every detector kind of ``backtest --signal`` runs here, built by ``build_detector``
with the daemon's ``detection:`` settings, so a backtest measures what runs.
The traffic detector is two-sided: ``SignalStatus.direction`` says whether an
active spike is a surge (+1) or a drop (-1).

Time comes from the observations (bucket ends for the bucketed signals), never
from a clock; buckets close when a later observation arrives or when ``close``
is called with a time past their end. A point for a bucket already closed
(late) is left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from outagewatch.detect.disruption import LOCAL_REASONS
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import SpikeDetector, SpikeVerdict, detector_for
from outagewatch.observations import ProbeResult

# Signal label -> detector kind (the signal table, detect/registry.py).
SIGNAL_DETECTORS: Final = {signal: spec.model.name for signal, spec in SIGNAL_TABLE.items()}
# Traffic queries: one detector per (service, query), two-sided on any series.
TRAFFIC_PREFIX: Final = "traffic/"
TRAFFIC_DETECTOR: Final = "generic"
REPORT_BUCKET_S: Final = 300.0
FAILURE_BUCKET_S: Final = 60.0
# Chat outcomes that are about our account, not the service: neither up nor down.
ACCOUNT_OUTCOMES: Final = frozenset({"auth", "billing", "quota", "rate_limited"})
# Buckets closed in one go at most; past that (a long pause) the gap is skipped.
_MAX_CLOSE: Final = 288

Key = tuple[str, str]  # (service, signal)


def traffic_signal(query: str) -> str:
    """The signal label of a traffic query's detector."""
    return TRAFFIC_PREFIX + query


def detector_kind(signal: str) -> str | None:
    """The detector kind of a signal label; None for an unknown label."""
    if signal.startswith(TRAFFIC_PREFIX) and len(signal) > len(TRAFFIC_PREFIX):
        return TRAFFIC_DETECTOR
    return SIGNAL_DETECTORS.get(signal)


def build_detector(kind: str, settings: DetectionSettings) -> SpikeDetector:
    """The one place a detector is made: the daemon's and ``backtest --signal kind``."""
    return detector_for(kind, settings)


def counts_as_failure(result: ProbeResult) -> bool | None:
    """True for a failure of the service, False for a success, None when it says neither."""
    if result.success is None:
        return None
    if result.chat is not None and result.chat.outcome in ACCOUNT_OUTCOMES:
        return None
    if result.reason in LOCAL_REASONS:
        return None  # this host failed, not the service: no reading (docs/runbooks.md)
    return not result.success


@dataclass
class Bucket:
    """An open time bucket: its index and running totals."""

    index: int
    total: float = 0.0
    count: int = 0


@dataclass
class SignalStatus:
    """The last verdict of one detector, its last point's time and its alert count."""

    verdict: SpikeVerdict
    last_time: float
    spikes: int = 0
    direction: float = 0.0  # of an active spike: +1 above the baseline, -1 below


class SignalDetectors:
    """Every service's detectors and the buckets that feed the bucketed signals."""

    def __init__(self, settings: DetectionSettings | None = None) -> None:
        self.settings = settings or DetectionSettings()
        self.detectors: dict[Key, SpikeDetector] = {}
        self.status: dict[Key, SignalStatus] = {}
        self.spikes_total: Counter[Key] = Counter()
        self._reports: dict[str, Bucket] = {}
        self._failures: dict[str, Bucket] = {}
        self.services: set[str] = set()
        self.traffic_queries: set[Key] = set()  # (service, query) configured

    # -- feeding ---------------------------------------------------------

    def feed(self, service: str, signal: str, time: float, value: float) -> SpikeVerdict | None:
        """One point for one detector; None when it was out of order or not finite."""
        key = (service, signal)
        detector = self.detectors.get(key)
        if detector is None:
            kind = detector_kind(signal)
            assert kind is not None, signal
            detector = self.detectors[key] = build_detector(kind, self.settings)
        before = detector.n
        verdict = detector.update(time, value)
        if detector.n == before:
            return None  # ignored by the detector
        if verdict.started:
            self.spikes_total[key] += 1
        direction = detector.alert_sign if verdict.active else 0.0
        self.status[key] = SignalStatus(verdict, time, self.spikes_total[key], direction)
        return verdict

    def traffic(self, service: str, query: str, time: float, value: float) -> None:
        """One traffic query result."""
        self.feed(service, traffic_signal(query), time, value)

    def probe(self, result: ProbeResult) -> None:
        """A probe run: the failure-ratio bucket and, for chat runs, TTFT and latency."""
        failed = counts_as_failure(result)
        if failed is not None:
            bucket = self._bucket(self._failures, result.service, result.time, FAILURE_BUCKET_S)
            if bucket is not None:
                bucket.total += float(failed)
                bucket.count += 1
        chat = result.chat
        if chat is None:
            return
        if chat.ttft_seconds is not None:
            self.feed(result.service, "ttft", result.time, chat.ttft_seconds)
        if chat.outcome == "ok":
            self.feed(result.service, "latency", result.time, result.duration_seconds)

    def report(self, service: str, time: float) -> None:
        """One counted report."""
        bucket = self._bucket(self._reports, service, time, REPORT_BUCKET_S)
        if bucket is not None:
            bucket.total += 1

    def open_reports(self, service: str, now: float, counted: float) -> None:
        """Open the service's report bucket at ``now`` with the reports it already holds.

        Buckets of a pause (a restart) are skipped, not fed as zeros: nobody was listening.
        """
        if service not in self._reports:
            self._reports[service] = Bucket(int(now // REPORT_BUCKET_S), counted)

    def rank(self, service: str, time: float, rank: float) -> None:
        """The service's best chart rank as of ``time``."""
        self.feed(service, "rank", time, rank)

    def close(self, now: float) -> None:
        """Close every bucket that ended by ``now``: one point each."""
        for service in list(self._reports):
            self._close(self._reports, service, "reports", now, REPORT_BUCKET_S)
        for service in list(self._failures):
            self._close(self._failures, service, "failure_ratio", now, FAILURE_BUCKET_S)

    def _bucket(
        self, buckets: dict[str, Bucket], service: str, time: float, width: float
    ) -> Bucket | None:
        index = int(time // width)
        bucket = buckets.get(service)
        if bucket is None:
            bucket = buckets[service] = Bucket(index)
        if index < bucket.index:
            return None  # late: its bucket is closed
        if index > bucket.index:
            signal = "reports" if buckets is self._reports else "failure_ratio"
            self._close(buckets, service, signal, index * width, width)
            bucket = buckets[service]
        return bucket

    def _close(
        self, buckets: dict[str, Bucket], service: str, signal: str, now: float, width: float
    ) -> None:
        bucket = buckets[service]
        ended = int(now // width)  # buckets before this one have ended
        if ended <= bucket.index:
            return
        if signal == "reports":
            # Every 5 minutes is a count, zero or not; after a long pause skip the gap.
            first = max(bucket.index, ended - _MAX_CLOSE)
            for index in range(first, ended):
                count = bucket.total if index == bucket.index else 0.0
                self.feed(service, signal, (index + 1) * width, count)
        elif bucket.count:
            # A minute without conclusive runs says nothing: no point.
            self.feed(service, signal, (bucket.index + 1) * width, bucket.total / bucket.count)
        buckets[service] = Bucket(ended)

    # -- configuration and persistence -----------------------------------

    def configure(
        self,
        settings: DetectionSettings,
        services: Iterable[str],
        traffic_queries: Iterable[Key] = (),
    ) -> None:
        """Take (re)loaded settings; forget services and traffic queries no longer configured."""
        keep = self.services = set(services)
        queries = self.traffic_queries = set(traffic_queries)

        def gone(key: Key) -> bool:
            service, signal = key
            if service not in keep:
                return True
            query = signal.removeprefix(TRAFFIC_PREFIX)
            return query != signal and (service, query) not in queries

        for key in [k for k in self.detectors if gone(k)]:
            del self.detectors[key]
            self.status.pop(key, None)
            self.spikes_total.pop(key, None)
        for buckets in (self._reports, self._failures):
            for service in [s for s in buckets if s not in keep]:
                del buckets[service]
        if settings != self.settings:
            self.settings = settings
            self.detectors = {
                key: SpikeDetector.from_state(det.to_state(), settings)
                for key, det in self.detectors.items()
            }

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state per detector, keyed ``service/signal``."""
        return {
            f"{service}/{signal}": {
                "detector": det.to_state(),
                "last_time": self.status[(service, signal)].last_time
                if (service, signal) in self.status
                else None,
                "spikes": self.spikes_total[(service, signal)],
            }
            for (service, signal), det in sorted(self.detectors.items())
        }

    def load(self, stored: Mapping[str, Any]) -> list[str]:
        """Restore detectors from ``snapshot()`` values; returns the keys that were malformed.

        Call after ``configure``: detectors of services no longer configured are skipped.
        """
        bad = []
        for name, value in stored.items():
            service, _, signal = name.partition("/")
            if service not in self.services:
                continue
            if detector_kind(signal) is None:
                bad.append(name)
                continue
            query = signal.removeprefix(TRAFFIC_PREFIX)
            if query != signal and (service, query) not in self.traffic_queries:
                continue
            try:
                det = SpikeDetector.from_state(value["detector"], self.settings)
                spikes = int(value["spikes"])
                last_time = value["last_time"]
            except (KeyError, TypeError, ValueError):
                bad.append(name)
                continue
            key = (service, signal)
            self.detectors[key] = det
            self.spikes_total[key] = spikes
            if last_time is not None:
                verdict = det.last_verdict
                direction = det.alert_sign if verdict.active else 0.0
                self.status[key] = SignalStatus(verdict, float(last_time), spikes, direction)
        return bad
