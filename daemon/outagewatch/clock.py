"""The injected clock: wall time for timestamps, monotonic time for durations."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol, overload


def parse_timestamp(text: str) -> float:
    """Unix seconds, or ISO 8601 (`2026-03-02 14:05:00`; without a zone, UTC)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@overload
def iso_time(ts: float) -> str: ...
@overload
def iso_time(ts: float | None) -> str | None: ...
def iso_time(ts: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC to the second (`2026-03-02T14:05:00Z`); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when_text(iso: str | None) -> str:
    """An ``iso_time`` for a reader: `2026-03-02 14:05:00 UTC`, or `never`."""
    return "never" if iso is None else iso.replace("T", " ").replace("Z", " UTC")


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (for timestamps)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin (for durations)."""


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.mono = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds
