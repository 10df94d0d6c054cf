"""One disruption state per service, from rules a reader can follow in this file.

Everything here is pure: a per-service evidence snapshot and the clock time in,
a verdict out. The daemon builds the evidence from the lenses (see
``detect/tracker.py``), keeps the resulting status and its transitions, and
computes detection lead times with ``incident_lead``.

No verdict without evidence. A reading is *conclusive* when it says something
about the service itself:

- a probe is conclusively **down** once it has failed ``probe_failure_runs``
  runs in a row (an HTTP 5xx, a refused connection, a timeout: any failure the
  probe counts, see ``signals.counts_as_failure``), whether or not it ever
  succeeded: a real outage at start is ``disrupted`` as fast as later;
- a probe is conclusively **up** when its last run succeeded, or it has
  succeeded since the daemon started and has not yet failed enough runs to be
  down. A probe that has never succeeded since start is never up;
- an official status page is conclusive once it has been read since start (a
  failing fetch reads nothing: it keeps the last good level, or none);
- inconclusive: a bot challenge, a chat answer about our own account, a probe
  that failed fewer runs than the threshold and never succeeded, anything
  stale, and, while the vantage point is unhealthy (``detect/vantage.py``), a
  probe whose trailing failures are of a local class (dns, connect, local,
  an unknown CA): those say more about us than about the provider.

States:

- ``disrupted``: fresh conclusive probes failing on at least
  ``probe_failure_share`` of them, or an official level of at least
  ``official_disrupted_level``, or warning signs from at least
  ``corroborating_lenses`` different lenses.
- ``degraded``: a warning sign from one lens.
- ``ok``: nothing above, every lens that vouches for the service (its probes,
  its official pages) has given a conclusive reading since start, and at least
  one of them has a fresh one that is up.
- ``unknown``: anything else, with the reasons in UNKNOWN_REASONS (no
  successful probe yet, the official page fetch failing, readings stale,
  the vantage point unhealthy). Trouble is never held back waiting for
  evidence; only ``ok`` is.

A state restored from the store after a restart is kept while the verdict is
``unknown`` only as long as it is fresh (``restored_fresh_for``, see
``tracker.py``). A rank surge is a *warning of load*, not trouble users see:
it sets its reason but never changes the state.

A probe run that failed for a reason in ``LOCAL_REASONS`` (this host out of file
descriptors, buffers or memory) is no reading of the service: it neither fails
nor keeps fresh the probe's streak (``counts_as_failure`` in signals.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from outagewatch.detect.registry import SIGNAL_TABLE


class DisruptionRules(Protocol):
    """The thresholds the rules read; ``config.DisruptionConfig`` is one.

    A protocol, so detect/ takes plain settings and never imports config.
    """

    @property
    def probe_failure_runs(self) -> int: ...
    @property
    def probe_failure_share(self) -> float: ...
    @property
    def chat_overloaded_runs(self) -> int: ...
    @property
    def official_disrupted_level(self) -> int: ...
    @property
    def corroborating_lenses(self) -> int: ...
    @property
    def stale_intervals(self) -> float: ...
    @property
    def recover_after(self) -> float: ...


STATES: Final = ("ok", "degraded", "disrupted", "unknown")
FLAGGED: Final = frozenset({"degraded", "disrupted"})
_SEVERITY: Final = {"ok": 0, "degraded": 1, "disrupted": 2}

# Every reason, with the lens it comes from. A reason is a warning sign (degraded)
# unless listed in DISRUPTING; WARNING_ONLY reasons never change the state.
REASON_LENS: Final = {
    "probes_failing": "probes",
    "some_probes_failing": "probes",
    "chat_overloaded": "chat",
    "official_minor": "official",
    "official_major": "official",
    # A spike signal's reason (detect/registry.py): failure_ratio_spike,
    # ttft_spike, latency_spike, report_spike, rank_surge.
    **{spec.reason: spec.lens for spec in SIGNAL_TABLE.values()},
    # The service's own traffic (docs/traffic.md): a surge or a drop is news, a warning sign.
    "traffic_spike": "traffic",
    "traffic_drop": "traffic",
}
# Why a service is unknown: set only with the state ``unknown``.
UNKNOWN_REASONS: Final = (
    "no_successful_probe_yet",  # no probe up or conclusively down since start
    "official_not_read_yet",  # the official page has not been read since start
    "official_fetch_failing",  # ... and its fetches are failing
    "readings_stale",  # nothing fresh from any lens that vouches
    "vantage_unhealthy",  # the probes fail locally while our own network is failing
)
REASONS: Final = (*REASON_LENS, *UNKNOWN_REASONS)
# Probe failure reasons that say the daemon's host failed, not the service.
LOCAL_REASONS: Final = frozenset({"local"})
DISRUPTING: Final = frozenset({"probes_failing", "official_major"})
WARNING_ONLY: Final = frozenset({"rank_surge"})

# Which spike detector sets which reason.
SPIKE_REASONS: Final = {signal: spec.reason for signal, spec in SIGNAL_TABLE.items()}


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
    """One probe: its reading, its trailing failed runs and (chat) overloaded answers.

    ``succeeded``: it has succeeded at least once since start. ``local_failure``:
    its trailing failures are of a local class (see ``detect/vantage.py``).
    """

    probe: str
    reading: Reading
    failing_runs: int = 0
    overloaded_runs: int = 0
    succeeded: bool = False
    local_failure: bool = False

    def is_down(self, rules: DisruptionRules) -> bool:
        return self.failing_runs >= rules.probe_failure_runs

    def is_up(self, rules: DisruptionRules) -> bool:
        """Up: the last run succeeded, or it has succeeded since start and is not down."""
        if self.reading.last is None or self.is_down(rules):
            return False
        return self.failing_runs == 0 or self.succeeded


@dataclass(frozen=True, slots=True)
class SpikeEvidence:
    """One spike detector of the service: whether a spike is active, and its cadence."""

    active: bool
    reading: Reading
    reason: str | None = None  # set when the signal's reason depends on the way (traffic)


@dataclass(frozen=True, slots=True)
class PageEvidence:
    """One official status page: its level (0 none .. 3 critical) and its reading.

    ``reading.last`` is the last good read; ``fetch_failing_since`` the start of
    the current run of failed fetches, None while the last fetch succeeded.
    """

    page: str
    level: int
    reading: Reading
    fetch_failing_since: float | None = None


@dataclass(frozen=True, slots=True)
class ServiceEvidence:
    """Everything the rules look at for one service at one moment."""

    service: str
    probes: tuple[ProbeEvidence, ...] = ()
    pages: tuple[PageEvidence, ...] = ()
    spikes: Mapping[str, SpikeEvidence] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say now. ``state`` None: no opinion (keep the current state)."""

    state: str | None
    reasons: frozenset[str]


def judge(
    evidence: ServiceEvidence,
    now: float,
    rules: DisruptionRules,
    vantage_healthy: bool = True,
) -> Verdict:
    """Apply the rules to one service's evidence at ``now``."""
    reasons: set[str] = set()
    unknown: set[str] = set()
    up, blind = _judge_probes(evidence, now, rules, vantage_healthy, reasons, unknown)
    pages_fresh = _judge_pages(evidence, now, rules, reasons, unknown)
    # Spike detectors: an active spike counts while its detector is fed.
    for signal, spike in evidence.spikes.items():
        if spike.active and spike.reading.freshness(now, rules.stale_intervals) == "fresh":
            reasons.add(spike.reason or SPIKE_REASONS[signal])

    warning_lenses = {REASON_LENS[r] for r in reasons - WARNING_ONLY}
    if reasons & DISRUPTING or len(warning_lenses) >= rules.corroborating_lenses:
        return Verdict("disrupted", frozenset(reasons))
    if warning_lenses:
        return Verdict("degraded", frozenset(reasons))
    if blind and not up:
        unknown = {"vantage_unhealthy"}  # the one reason that matters: look at us first
    elif not unknown and not (up or pages_fresh):
        unknown.add("readings_stale")
    if unknown:
        return Verdict("unknown", frozenset(reasons | unknown))
    return Verdict("ok", frozenset(reasons))


def _judge_probes(
    evidence: ServiceEvidence,
    now: float,
    rules: DisruptionRules,
    vantage_healthy: bool,
    reasons: set[str],
    unknown: set[str],
) -> tuple[int, int]:
    """Add what the probes say to ``reasons`` and ``unknown``; (probes up, probes set
    aside as blind). Only fresh conclusive probes count; the rest say nothing."""
    up = down = blind = overloaded = 0
    probes_read = False
    for probe in evidence.probes:
        probes_read = probes_read or probe.is_down(rules) or probe.is_up(rules)
        if probe.reading.freshness(now, rules.stale_intervals) != "fresh":
            continue
        if not vantage_healthy and probe.local_failure and probe.failing_runs:
            blind += 1
            continue
        overloaded += probe.overloaded_runs >= rules.chat_overloaded_runs
        down += probe.is_down(rules)
        up += probe.is_up(rules)
    if down:
        # A probe set aside still counts as a probe: being blind never makes it worse.
        most = down / (up + down + blind) >= rules.probe_failure_share
        reasons.add("probes_failing" if most else "some_probes_failing")
    if overloaded:
        reasons.add("chat_overloaded")
    if evidence.probes and not probes_read:
        unknown.add("no_successful_probe_yet")
    return up, blind


def _judge_pages(
    evidence: ServiceEvidence,
    now: float,
    rules: DisruptionRules,
    reasons: set[str],
    unknown: set[str],
) -> bool:
    """Add what the official pages say (their worst fresh level) to ``reasons`` and
    ``unknown``; whether any page is fresh."""
    fresh = [
        p for p in evidence.pages if p.reading.freshness(now, rules.stale_intervals) == "fresh"
    ]
    level = max((p.level for p in fresh), default=0)
    if level >= rules.official_disrupted_level:
        reasons.add("official_major")
    elif level >= 1:
        reasons.add("official_minor")
    if evidence.pages and all(p.reading.last is None for p in evidence.pages):
        failing = any(p.fetch_failing_since is not None for p in evidence.pages)
        unknown.add("official_fetch_failing" if failing else "official_not_read_yet")
    return bool(fresh)


@dataclass(frozen=True, slots=True)
class DisruptionStatus:
    """A service's current state, since when, and a milder state waiting to be taken."""

    state: str
    since: float
    reasons: frozenset[str] = frozenset()
    milder: str | None = None
    milder_since: float | None = None


def step(
    status: DisruptionStatus, verdict: Verdict, now: float, rules: DisruptionRules
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
