"""The frozen records that cross layers: sources yield them, the pipeline consumes them."""

from __future__ import annotations

from dataclasses import dataclass, field

# Why a probe failed: exactly one of these per failed run.
HTTP_FAILURE_REASONS = (
    "timeout",
    "dns",
    "connect",
    "tls",
    "http_status",
    "body_mismatch",
    "too_large",
)
PHASES = ("dns", "connect", "tls", "processing", "transfer")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of one probe.

    ``success`` is None when the answer was inconclusive (a bot challenge):
    neither up nor down.
    """

    service: str
    probe: str
    kind: str
    time: float
    success: bool | None
    duration_seconds: float
    reason: str | None = None
    status_code: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    tls_earliest_expiry: float | None = None
    detail: str | None = None

    @property
    def inconclusive(self) -> bool:
        return self.success is None


@dataclass(frozen=True, slots=True)
class Report:
    """One user's outage report, as taken by the intake or imported.

    ``reporter`` is already a keyed hash (None for imported history); the
    clear id never leaves the web handler.
    """

    service: str
    problem: str
    time: float
    reporter: str | None = None
    country: str | None = None
    comment: str | None = None
    channel: str = "api"


Observation = ProbeResult | Report
