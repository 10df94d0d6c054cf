"""One disruption state per service, from rules a reader can follow in this file.

Everything here is pure: a per-service evidence snapshot and the clock time in,
a verdict out. The daemon builds the evidence from the lenses (see
``detect/tracker.py``), keeps the resulting status and its transitions, and
computes detection lead times with ``incident_lead``.

States:

- ``ok``: at least one lens that can vouch for the service (a probe or an
  official status page) is fresh, and nothing below is wrong.
- ``degraded``: a warning sign from one lens.
- ``disrupted``: probes failing on at least ``probe_failure_share`` of the fresh
  probes for ``probe_failure_runs`` runs, or an official level of at least
  ``official_disrupted_level``, or warning signs from at least
  ``corroborating_lenses`` different lenses.
- ``unknown``: no probe and no status page has a fresh reading.

A rank surge is a *warning of load*, not trouble users see: it sets its reason
but never changes the state.

A probe run that failed for a reason in ``LOCAL_REASONS`` (this host out of file
descriptors, buffers or memory) is no reading of the service: it neither fails
nor keeps fresh the probe's streak (``counts_as_failure`` in signals.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from outagewatch.config import DisruptionConfig

STATES: Final = ("ok", "degraded", "disrupted", "unknown")
FLAGGED: Final = frozenset({"degraded", "disrupted"})
_SEVERITY: Final = {"ok": 0, "degraded": 1, "disrupted": 2}

# Every reason, with the lens it comes from. A reason is a warning sign (degraded)
# unless listed in DISRUPTING; WARNING_ONLY reasons never change the state.
REASON_LENS: Final = {
    "probes_failing": "probes",
    "some_probes_failing": "probes",
    "failure_ratio_spike": "probes",
    "chat_overloaded": "chat",
    "ttft_spike": "chat",
    "latency_spike": "chat",
    "report_spike": "reports",
    "official_minor": "official",
    "official_major": "official",
    "rank_surge": "appstore",
}
REASONS: Final = tuple(REASON_LENS)
# Probe failure reasons that say the daemon's host failed, not the service.
LOCAL_REASONS: Final = frozenset({"local"})
DISRUPTING: Final = frozenset({"probes_failing", "official_major"})
WARNING_ONLY: Final = frozenset({"rank_surge"})

# Which spike detector sets which reason.
SPIKE_REASONS: Final = {
    "failure_ratio": "failure_ratio_spike",
    "ttft": "ttft_spike",
    "latency": "latency_spike",
    "reports": "report_spike",
    "rank": "rank_surge",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """When a lens last read something, and how often it reads.

    ``last`` is None when it has read nothing since ``started`` (the daemon's
    start, or when the lens was configured).
    """

    last: float | None
    interval: float
    started: float

    def freshness(self, now: float, stale_intervals: float) -> str:
        """``fresh``, ``pending`` (nothing read yet, still in its first intervals) or ``stale``."""
        allowed = stale_intervals * self.interval
        if self.last is None:
            return "pending" if now - self.started <= allowed else "stale"
        return "fresh" if now - self.last <= allowed else "stale"


@dataclass(frozen=True, slots=True)
class ProbeEvidence:
    """One probe: its reading, its trailing failed runs and (chat) overloaded answers."""

    probe: str
    reading: Reading
    failing_runs: int = 0
    overloaded_runs: int = 0


@dataclass(frozen=True, slots=True)
class SpikeEvidence:
    """One spike detector of the service: whether a spike is active, and its cadence."""

    active: bool
    reading: Reading


@dataclass(frozen=True, slots=True)
class PageEvidence:
    """One official status page: its level (0 none .. 3 critical) and its reading."""

    page: str
    level: int
    reading: Reading


@dataclass(frozen=True, slots=True)
class ServiceEvidence:
    """Everything the rules look at for one service at one moment."""

    service: str
    probes: tuple[ProbeEvidence, ...] = ()
    pages: tuple[PageEvidence, ...] = ()
    spikes: Mapping[str, SpikeEvidence] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say now. ``state`` None: no opinion yet (lenses still starting)."""

    state: str | None
    reasons: frozenset[str]


def judge(evidence: ServiceEvidence, now: float, rules: DisruptionConfig) -> Verdict:
    """Apply the rules to one service's evidence at ``now``."""
    stale = rules.stale_intervals
    reasons: set[str] = set()

    # Probes: count only fresh ones; a stale probe says nothing either way.
    freshness: set[str] = set()
    fresh = failing = overloaded = 0
    for probe in evidence.probes:
        probe_freshness = probe.reading.freshness(now, stale)
        freshness.add(probe_freshness)
        if probe_freshness == "fresh":
            fresh += 1
            failing += probe.failing_runs >= rules.probe_failure_runs
            overloaded += probe.overloaded_runs >= rules.chat_overloaded_runs
    if failing:
        most = failing / fresh >= rules.probe_failure_share
        reasons.add("probes_failing" if most else "some_probes_failing")
    if overloaded:
        reasons.add("chat_overloaded")

    # Official pages: the worst fresh level.
    fresh_pages = [p for p in evidence.pages if p.reading.freshness(now, stale) == "fresh"]
    level = max((p.level for p in fresh_pages), default=0)
    if level >= rules.official_disrupted_level:
        reasons.add("official_major")
    elif level >= 1:
        reasons.add("official_minor")

    # Spike detectors: an active spike counts while its detector is fed.
    for signal, spike in evidence.spikes.items():
        if spike.active and spike.reading.freshness(now, stale) == "fresh":
            reasons.add(SPIKE_REASONS[signal])

    freshness.update(p.reading.freshness(now, stale) for p in evidence.pages)  # they vouch too
    warning_lenses = {REASON_LENS[r] for r in reasons - WARNING_ONLY}
    if reasons & DISRUPTING or len(warning_lenses) >= rules.corroborating_lenses:
        state: str | None = "disrupted"
    elif warning_lenses:
        state = "degraded"
    elif "fresh" in freshness:
        state = "ok"
    elif "pending" in freshness:
        state = None  # just started: the lenses have not read anything yet
    else:
        state = "unknown"
    return Verdict(state, frozenset(reasons))


@dataclass(frozen=True, slots=True)
class DisruptionStatus:
    """A service's current state, since when, and a milder state waiting to be taken."""

    state: str
    since: float
    reasons: frozenset[str] = frozenset()
    milder: str | None = None
    milder_since: float | None = None


def step(
    status: DisruptionStatus, verdict: Verdict, now: float, rules: DisruptionConfig
) -> DisruptionStatus:
    """The next status: worse (or unknown, or out of unknown) at once, milder after a hold.

    A milder verdict must hold for ``recover_after`` before it is taken, so one
    good probe run does not end a disruption. No verdict keeps the state.
    """
    target = verdict.state
    if target is None or target == status.state:
        return DisruptionStatus(status.state, status.since, verdict.reasons)
    immediate = "unknown" in (target, status.state) or _SEVERITY[target] > _SEVERITY[status.state]
    if immediate:
        return DisruptionStatus(target, now, verdict.reasons)
    # Milder: start (or keep) waiting; a different milder state restarts nothing,
    # the hold is for "better than now".
    waiting_since = status.milder_since if status.milder_since is not None else now
    if now - waiting_since >= rules.recover_after:
        return DisruptionStatus(target, now, verdict.reasons)
    return DisruptionStatus(status.state, status.since, verdict.reasons, target, waiting_since)


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of a service's state."""

    service: str
    time: float
    previous: str
    state: str
    reasons: tuple[str, ...]


def state_at(transitions: Sequence[Transition], time: float, initial: str = "unknown") -> str:
    """The state at ``time`` from a service's transitions (oldest first)."""
    index = bisect.bisect_right([t.time for t in transitions], time)
    return transitions[index - 1].state if index else initial


def flagged_since(transitions: Sequence[Transition], time: float) -> float | None:
    """Start of the flagged (degraded or disrupted) stretch in progress at ``time``."""
    index = bisect.bisect_right([t.time for t in transitions], time)
    onset = None
    for transition in reversed(transitions[:index]):
        if transition.state not in FLAGGED:
            break
        onset = transition.time
    return onset


def first_flag_after(transitions: Iterable[Transition], time: float) -> float | None:
    """The first move into a flagged state after ``time``."""
    for transition in transitions:
        if (
            transition.time > time
            and transition.state in FLAGGED
            and transition.previous not in FLAGGED
        ):
            return transition.time
    return None


@dataclass(frozen=True, slots=True)
class Lead:
    """How an official incident compared with outagewatch's flag.

    ``outcome`` is ``early`` (flagged at its start: ``seconds`` ≥ 0 is how long
    before), ``late`` (flagged after it: ``seconds`` < 0) or ``missed`` (not
    flagged within ``lead_window`` of its start: ``seconds`` None).
    """

    outcome: str
    seconds: float | None


def incident_lead(
    transitions: Sequence[Transition], start: float, now: float, lead_window: float
) -> Lead | None:
    """The lead for an incident that started at ``start``; None while undecided.

    Early when the service was already flagged at ``start``: the lead is how
    long it had been. Otherwise the first flag after ``start`` within
    ``lead_window`` makes it late (negative lead); none by then is a miss.
    """
    if start > now:
        return None
    onset = flagged_since(transitions, start)
    if onset is not None:
        return Lead("early", start - onset)
    flag = first_flag_after(transitions, start)
    if flag is not None and flag - start <= lead_window:
        return Lead("late", start - flag)
    if flag is not None or now - start > lead_window:
        return Lead("missed", None)
    return None
