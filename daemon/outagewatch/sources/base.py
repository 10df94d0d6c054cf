"""What every source is: a key, a schedule, and ``collect(ctx)``.

The framework (scheduler + pipeline) records each run's duration, success,
last-success time and failure reason; a source only speaks its protocol.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from outagewatch.clock import Clock
from outagewatch.observations import Observation
from outagewatch.sources.errors import SourceError

if TYPE_CHECKING:
    import structlog

    from outagewatch.sources.client import HttpClients


TimeoutAnswer = Callable[[], Sequence[Observation]]


@dataclass(frozen=True)
class RunContext:
    """What a run may use: shared HTTP clients, the clock, a bound logger, the deadline.

    The deadline is the framework's (``run_source``), never the source's own: a
    source reads it only where its protocol needs it, and leaves with
    ``answer_on_timeout`` what its run says when the deadline cuts it short.
    """

    http: HttpClients
    clock: Clock
    log: structlog.typing.FilteringBoundLogger
    deadline: float = math.inf  # on clock.monotonic()
    # One slot per run (run_source makes a fresh list): the last answer left wins.
    timeout_answers: list[TimeoutAnswer] = field(default_factory=list, compare=False, repr=False)

    def remaining(self) -> float:
        """Seconds left before the run's deadline."""
        return self.deadline - self.clock.monotonic()

    def answer_on_timeout(self, answer: TimeoutAnswer) -> None:
        """What the run observed so far, built only if the deadline cuts it short."""
        self.timeout_answers[:] = [answer]


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


async def run_source(source: Source, ctx: RunContext) -> Sequence[Observation]:
    """Collect once under the run's one deadline, ``source.timeout`` from now.

    A run the deadline cuts short answers what the source left with
    ``answer_on_timeout``; a source that left nothing failed with ``timeout``.
    """
    run = replace(ctx, deadline=ctx.clock.monotonic() + source.timeout, timeout_answers=[])
    try:
        async with asyncio.timeout(source.timeout):
            return await source.collect(run)
    except TimeoutError:
        if not run.timeout_answers:
            raise SourceError("timeout", f"no answer within {source.timeout:g}s") from None
        return run.timeout_answers[-1]()
