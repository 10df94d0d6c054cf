"""The frozen records that cross layers: sources yield them, the pipeline consumes them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

# Why a probe failed: exactly one of these per failed run.
ProbeReason = Literal[
    "timeout",
    "dns",
    "connect",
    "tls",
    "http_status",
    "body_mismatch",
    "too_large",
    "body",  # the head arrived, the body broke off: the status code is kept
    "bad_response",  # not HTTP a user agent may accept (too many 1xx, bad framing)
    "local",  # this host's own resources ran out: not a reading of the service
]
HTTP_FAILURE_REASONS: tuple[ProbeReason, ...] = get_args(ProbeReason)
# Finer causes of a failure where they form a closed set: the failures counter's
# `sub_reason` label ("" for a failure without one). docs/runbooks.md says what each means.
SUB_REASONS: dict[str, tuple[str, ...]] = {
    "tls": ("expired", "hostname_mismatch", "unknown_ca", "self_signed", "handshake"),
    "connect": ("refused", "reset", "unreachable"),
    "dns": ("nxdomain", "servfail", "timeout"),
    "local": ("fd_exhausted", "no_buffers", "no_memory"),
}
# A failure detail is for a person, in a log line, the status JSON and the page: one short line.
DETAIL_LIMIT = 200
PHASES = ("dns", "connect", "tls", "processing", "transfer")
# What a chat probe run ended as: exactly one per run (`ok` or the failure reason).
ChatOutcome = Literal[
    "ok",
    "overloaded",
    "rate_limited",
    "quota",
    "auth",
    "billing",
    "server_error",
    "timeout",
    "stalled",
    "truncated",
    "bad_response",
    "connect",
    "tls",
    "dns",
    "local",
]
CHAT_OUTCOMES: tuple[ChatOutcome, ...] = get_args(ChatOutcome)
# Rate-limit resources the providers report headroom for (bounded label values).
RATELIMIT_RESOURCES = ("requests", "tokens", "input_tokens", "output_tokens")
# What chat budgets cap.
BUDGET_RESOURCES = ("requests", "tokens", "cost")


@dataclass(frozen=True, slots=True)
class ChatStats:
    """What a chat probe run measured, besides the shared probe fields.

    ``ratelimit_remaining`` maps a resource to remaining/limit from the response
    headers; ``should_retry`` is the provider's ``x-should-retry`` header.
    """

    outcome: str
    ttft_seconds: float | None = None
    max_chunk_gap_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    output_tokens_per_second: float | None = None
    ratelimit_remaining: dict[str, float] = field(default_factory=dict)
    retry_after_seconds: float | None = None
    should_retry: bool | None = None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of one probe.

    ``success`` is None when the answer was inconclusive (a bot challenge):
    neither up nor down. ``detail`` says why a run failed, in at most DETAIL_LIMIT
    characters; ``sub_reason`` is one of SUB_REASONS[reason] where it applies.
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
    chat: ChatStats | None = None
    sub_reason: str | None = None

    def __post_init__(self) -> None:
        if self.detail is not None and len(self.detail) > DETAIL_LIMIT:
            object.__setattr__(self, "detail", short_detail(self.detail))

    @property
    def inconclusive(self) -> bool:
        return self.success is None


@dataclass(frozen=True, slots=True)
class ChatBudgetStatus:
    """A chat probe's spending headroom for today (UTC), after a run or a skipped run.

    ``remaining`` maps each capped resource to the tightest remaining/cap of the
    probe's and its service's caps.
    """

    service: str
    probe: str
    time: float
    exhausted: bool
    remaining: dict[str, float] = field(default_factory=dict)


def short_detail(text: str) -> str:
    """A failure detail as one line of at most DETAIL_LIMIT characters."""
    line = " ".join(text.split())
    return line if len(line) <= DETAIL_LIMIT else line[: DETAIL_LIMIT - 1] + "…"


# Official status pages. Component statuses are Statuspage's five; other formats
# are mapped onto them. Impacts rank as the status level does: none 0 .. critical 3.
COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
IMPACT_LEVELS = {"none": 0, "minor": 1, "major": 2, "critical": 3}
_STATUS_RANK = {
    "operational": 0,
    "under_maintenance": 1,
    "degraded_performance": 2,
    "partial_outage": 3,
    "major_outage": 4,
}


def worst_status(statuses: Iterable[str]) -> str:
    """The most severe of several component statuses (operational when none)."""
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0), default="operational")


@dataclass(frozen=True, slots=True)
class StatusIncident:
    """An incident as the page shows it; times are epoch seconds.

    ``start`` is when the provider says it began, ``created`` when the page
    published it; ``resolved`` is the page's resolve time of a closed incident,
    when it gives one.
    """

    id: str
    name: str
    impact: str
    start: float | None
    created: float | None
    open: bool = True
    resolved: float | None = None


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """One reading of one official status page of a service.

    ``components`` maps the configured components (by their selector in the
    config, which a rename on the page does not change) to one of
    COMPONENT_STATUSES; ``component_names`` gives their names on the page now.
    ``incidents`` holds the open incidents and any the page lists as resolved,
    capped; ``open_incidents_dropped`` counts the open ones beyond the cap.
    """

    service: str
    page: str
    kind: str
    time: float
    indicator: str
    components: dict[str, str]
    incidents: tuple[StatusIncident, ...]
    maintenance_active: bool
    component_names: dict[str, str] = field(default_factory=dict)
    open_incidents_dropped: int = 0

    @property
    def open_incidents(self) -> tuple[StatusIncident, ...]:
        return tuple(i for i in self.incidents if i.open)

    @property
    def level(self) -> int:
        """Worst of the page indicator and every open incident's impact (0..3)."""
        impacts = [self.indicator, *(i.impact for i in self.open_incidents)]
        return max(IMPACT_LEVELS.get(impact, 0) for impact in impacts)

    @property
    def earliest_start(self) -> float | None:
        """Start of the earliest open incident, None when none is open."""
        starts = [i.start for i in self.open_incidents if i.start is not None]
        return min(starts) if starts else None


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


class LensObservation:
    """The base of an observation type a lens defines in its own package: the pipeline
    routes each observation to the lenses that name its type (``Lens.observations``)."""

    __slots__ = ()


Observation = ProbeResult | ChatBudgetStatus | StatusSnapshot | Report | LensObservation
