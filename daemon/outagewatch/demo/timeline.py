"""The seed day as a script: what the simulated world is like at each moment.

Pure functions of the demo minute (minutes since the demo began, in demo
time). The world reads them for every answer it gives; nothing here draws
random numbers or reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEMO_MINUTES = 240.0  # the story, in demo time
WALL_SECONDS = 300.0  # ...told in five minutes of wall clock at --speed 1


@dataclass(frozen=True, slots=True)
class Phase:
    number: int
    start: float  # demo minute
    title: str


PHASES = (
    Phase(1, 0.0, "normal traffic: probes answer, a trickle of reports"),
    Phase(2, 45.0, "the Claude app climbs the App Store charts to #1 in the US"),
    Phase(3, 95.0, "load: first tokens slow down, then 529 overloaded, then failed streams"),
    Phase(4, 140.0, "the official page admits a major outage"),
    Phase(5, 170.0, "recovery: answers come back, reports fade, the incident is resolved"),
)

# When the official page changes (demo minutes). The incident's own start time,
# as the provider backdates it, is earlier than when it is published.
INCIDENT_PUBLISHED = 140.0
INCIDENT_STARTED = 128.0
INCIDENT_MONITORING = 178.0
INCIDENT_RESOLVED = 190.0

COUNTRIES = ("us", "gb", "de", "jp")


def phase_at(minute: float) -> Phase:
    current = PHASES[0]
    for phase in PHASES:
        if minute >= phase.start:
            current = phase
    return current


def _ramp(minute: float, start: float, end: float) -> float:
    """0 before ``start``, 1 after ``end``, linear between."""
    if minute <= start:
        return 0.0
    if minute >= end:
        return 1.0
    return (minute - start) / (end - start)


@dataclass(frozen=True, slots=True)
class ApiConditions:
    """How one chat API behaves: the story's first-token time and failure odds."""

    ttft_seconds: float
    overloaded: float  # share answered 529 overloaded_error
    stream_error: float  # share answered 200, then `event: error` mid-stream
    stall: float  # share that go silent mid-stream


def claude_api(minute: float) -> ApiConditions:
    """Claude under the load of its own success; fine again after minute 170."""
    slow = _ramp(minute, 95.0, 112.0) * (1.0 - _ramp(minute, 170.0, 180.0))
    overload = _ramp(minute, 110.0, 122.0) * (1.0 - _ramp(minute, 168.0, 172.0))
    broken = _ramp(minute, 124.0, 132.0) * (1.0 - _ramp(minute, 166.0, 170.0))
    return ApiConditions(
        ttft_seconds=0.4 + 2.0 * slow,
        overloaded=0.7 * overload - 0.25 * broken,
        stream_error=0.15 * broken,
        stall=0.1 * broken,
    )


def chatgpt_api(minute: float) -> ApiConditions:
    """ChatGPT stays healthy; a little slower while Claude's users come over."""
    busy = _ramp(minute, 120.0, 140.0) * (1.0 - _ramp(minute, 175.0, 190.0))
    return ApiConditions(ttft_seconds=0.5 + 0.3 * busy, overloaded=0.0, stream_error=0.0, stall=0.0)


def web_up_share(service: str, minute: float) -> float:
    """Share of the web app's answers that are 200 (the rest are 503)."""
    if service != "claude":
        return 1.0
    return 1.0 - 0.6 * _ramp(minute, 126.0, 134.0) * (1.0 - _ramp(minute, 168.0, 174.0))


def usual_reports_per_hour(service: str, epoch_seconds: float) -> float:
    """The ordinary level: a daily cycle peaking mid-afternoon UTC."""
    hour = (epoch_seconds / 3600.0) % 24.0
    daily = 1.0 + 0.5 * math.sin((hour - 9.0) / 24.0 * 2 * math.pi)
    return (24.0 if service == "claude" else 18.0) * daily


def reports_per_hour(service: str, minute: float, epoch_seconds: float) -> float:
    """Reports per hour: the usual level, plus the surge toward ~2,000/h for Claude."""
    usual = usual_reports_per_hour(service, epoch_seconds)
    if service == "claude":
        surge = _ramp(minute, 105.0, 135.0) * (1.0 - _ramp(minute, 168.0, 195.0))
        return usual + 2000.0 * surge
    spill = _ramp(minute, 125.0, 145.0) * (1.0 - _ramp(minute, 170.0, 185.0))
    return usual + 60.0 * spill


def chart_rank(service: str, country: str, minute: float) -> int:
    """Position in the top-free chart: Claude climbs to #1 in the US by minute 90."""
    if service == "chatgpt":
        base = {"us": 1, "gb": 1, "de": 2, "jp": 3}[country]
        # Pushed down one the moment Claude reaches its place: two apps never share a
        # position (the world would list only one, and the other would drop out of the chart).
        return base + (1 if chart_rank("claude", country, minute) <= base else 0)
    start = {"us": 48, "gb": 63, "de": 81, "jp": 95}[country]
    best = {"us": 1, "gb": 4, "de": 9, "jp": 17}[country]
    climb = _ramp(minute, 45.0, 90.0)
    # A climb in log space: quick through the tail, slow near the top.
    rank = math.exp(math.log(start) + (math.log(best) - math.log(start)) * climb)
    return max(best, round(rank))


@dataclass(frozen=True, slots=True)
class OfficialStatus:
    """What the fake Claude status page shows."""

    indicator: str  # none, minor, major, critical
    component: str  # Statuspage component status
    incident_status: str | None  # None: no incident listed


def claude_official(minute: float) -> OfficialStatus:
    if minute < INCIDENT_PUBLISHED:
        return OfficialStatus("none", "operational", None)
    if minute < INCIDENT_MONITORING:
        return OfficialStatus("major", "major_outage", "identified")
    if minute < INCIDENT_RESOLVED:
        return OfficialStatus("minor", "degraded_performance", "monitoring")
    return OfficialStatus("none", "operational", "resolved")
