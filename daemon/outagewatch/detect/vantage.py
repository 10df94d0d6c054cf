"""Is the problem us? The daemon's judgement of its own vantage point.

When the daemon's own network fails (DNS gone, the uplink down, an
intercepting proxy), every provider seems to fail at once. Two kinds of
evidence tell that apart from an outage of the providers:

- **control targets** (``vantage.controls``): a name to resolve and reference
  URLs that are not chatbot services. A control fails after
  ``control_failure_runs`` failed runs in a row; any HTTP answer is a success
  (it proves the network carried the request).
- **correlation**: the share of judged services (those with a fresh probe
  reading) whose conclusive probes are mostly failing *with a local-class
  reason*: dns, connect, local (and their sub-reasons), or tls with an unknown
  CA. One run is enough here: the local failures of most services at once
  must be seen before any of them has failed enough runs to be disrupted.

The vantage point is **unhealthy** when at least half of the fresh controls
fail, or when the local share reaches ``local_failure_share`` of at least
``min_services`` judged services and the controls do not vouch for the
network (none configured, none fresh, or not all answering their last run). Passing controls
outweigh the correlation: a DNS provider failing for most chatbot domains at
once is the providers' outage, not ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from outagewatch.detect.disruption import Reading, ServiceEvidence

# Failure reasons (and sub-reasons, ``connect_refused`` or ``connect/refused``)
# that fail at our end as easily as at the provider's.
LOCAL_CLASS: Final = frozenset({"dns", "connect", "local"})
# TLS sub-reasons (sources/client.py) of a chain ending at a CA we do not trust.
_UNTRUSTED_CHAIN: Final = frozenset({"unknown_ca", "self_signed"})
# OpenSSL's words for a chain that ends at a CA we do not trust (an intercepting proxy).
_UNKNOWN_CA: Final = (
    "unable to get local issuer certificate",
    "self-signed certificate in certificate chain",
    "self signed certificate in certificate chain",
    "unable to get issuer certificate",
)


def is_local_failure(reason: str | None, detail: str | None, sub_reason: str | None = None) -> bool:
    """Whether a failure of this reason could be our own network's."""
    if reason is None:
        return False
    family = reason.replace("/", "_").split("_", 1)[0]
    if family in LOCAL_CLASS:
        return True
    if family == "tls" and sub_reason in _UNTRUSTED_CHAIN:
        return True
    if family == "tls" and detail is not None:
        lowered = detail.lower()
        return any(marker in lowered for marker in _UNKNOWN_CA)
    return False


@dataclass
class ControlStreak:
    """A control target's trailing failed runs and its last result."""

    last: float | None = None
    failing: int = 0
    reason: str | None = None
    detail: str | None = None

    def observe(self, time: float, success: bool, reason: str | None, detail: str | None) -> None:
        self.last = time
        self.failing = 0 if success else self.failing + 1
        self.reason, self.detail = (None, None) if success else (reason, detail)


@dataclass(frozen=True, slots=True)
class ControlEvidence:
    """One control target at one moment."""

    target: str
    reading: Reading
    failing_runs: int = 0


@dataclass(frozen=True, slots=True)
class VantageVerdict:
    """The vantage point now, with the evidence for it."""

    healthy: bool
    controls: int = 0  # fresh control targets
    controls_failing: int = 0
    services: int = 0  # services with a fresh probe reading
    services_failing_locally: int = 0
    failing_controls: tuple[str, ...] = ()

    @property
    def local_share(self) -> float:
        return self.services_failing_locally / self.services if self.services else 0.0


HEALTHY: Final = VantageVerdict(True)


def failing_locally(evidence: ServiceEvidence, now: float, stale_intervals: float) -> bool | None:
    """Whether most of the service's fresh probes fail locally; None without a fresh probe."""
    fresh = local = 0
    for probe in evidence.probes:
        if probe.reading.freshness(now, stale_intervals) != "fresh":
            continue
        fresh += 1
        local += probe.failing_runs > 0 and probe.local_failure
    if not fresh:
        return None
    return local > 0 and local * 2 >= fresh


class VantageRules(Protocol):
    """The thresholds of the vantage judgement; the vantage lens's config is one."""

    @property
    def control_failure_runs(self) -> int: ...
    @property
    def local_failure_share(self) -> float: ...
    @property
    def min_services(self) -> int: ...


def judge_vantage(
    controls: Iterable[ControlEvidence],
    services: Sequence[ServiceEvidence],
    now: float,
    rules: VantageRules,
    stale_intervals: float,
) -> VantageVerdict:
    """The vantage point's health from its control targets and the services' failures."""
    fresh_controls = [c for c in controls if c.reading.freshness(now, stale_intervals) == "fresh"]
    failing = tuple(
        c.target for c in fresh_controls if c.failing_runs >= rules.control_failure_runs
    )
    judged = local = 0
    for evidence in services:
        verdict = failing_locally(evidence, now, stale_intervals)
        if verdict is not None:
            judged += 1
            local += verdict
    controls_fail = bool(fresh_controls) and len(failing) * 2 >= len(fresh_controls)
    # Passing: every fresh control's last run answered (one failure is not yet failing,
    # but it vouches for nothing).
    controls_pass = bool(fresh_controls) and all(c.failing_runs == 0 for c in fresh_controls)
    correlated = judged >= rules.min_services and local >= rules.local_failure_share * judged
    healthy = not (controls_fail or (correlated and not controls_pass))
    return VantageVerdict(healthy, len(fresh_controls), len(failing), judged, local, failing)
