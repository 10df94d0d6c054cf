"""What every source is: a key, a schedule, and ``collect(ctx)``.

The framework (scheduler + pipeline) records each run's duration, success,
last-success time and failure reason; a source only speaks its protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from outagewatch.clock import Clock
from outagewatch.observations import Observation

if TYPE_CHECKING:
    import structlog

    from outagewatch.sources.client import HttpClients


@dataclass(frozen=True)
class RunContext:
    """What a run may use: shared HTTP clients, the clock, a bound logger."""

    http: HttpClients
    clock: Clock
    log: structlog.typing.FilteringBoundLogger


def probe_source_key(service: str, probe: str) -> str:
    """The source key of a probe: its job id and its shard key."""
    return f"{service}/probe/{probe}"


class SourceError(Exception):
    """A run that could not observe anything, with a reason from a fixed set."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Source(Protocol):
    """One scheduled job."""

    @property
    def key(self) -> str:
        """Unique, stable id (`claude/probe/api`): job id and shard key."""

    @property
    def kind(self) -> str: ...

    @property
    def interval(self) -> float: ...

    @property
    def timeout(self) -> float: ...

    @property
    def config(self) -> object:
        """What the source was built from: an unchanged config keeps the source on reload."""

    @property
    def log_context(self) -> dict[str, str]:
        """Bound to the run's logger: service, probe, target..."""

    async def collect(self, ctx: RunContext) -> Sequence[Observation]:
        """Observe once. Raise SourceError when nothing could be observed."""
