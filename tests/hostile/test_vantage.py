"""Hostile evidence for the verdict: whatever the probes, pages and network say, no OK
without evidence, a blind daemon never invents an outage, and odd failure texts never
break the local-class rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.config import DisruptionConfig
from outagewatch.detect.disruption import (
    REASONS,
    STATES,
    PageEvidence,
    ProbeEvidence,
    Reading,
    ServiceEvidence,
    judge,
)
from outagewatch.detect.vantage import is_local_failure

NOW = 1_750_000_000.0
RULES = DisruptionConfig()

readings = st.builds(
    Reading,
    # Mostly fresh: that is where the rules have something to say.
    last=st.none() | st.floats(NOW - 60, NOW) | st.floats(NOW - 7200, NOW),
    interval=st.sampled_from([10.0, 30.0, 60.0]),
    started=st.floats(NOW - 7200, NOW),
)
probes = st.builds(
    ProbeEvidence,
    probe=st.sampled_from(["api", "web", "chat"]),
    reading=readings,
    failing_runs=st.integers(0, 6),
    overloaded_runs=st.integers(0, 3),
    succeeded=st.booleans(),
    local_failure=st.booleans(),
)
pages = st.builds(
    PageEvidence,
    page=st.just("main"),
    level=st.integers(0, 3),
    reading=readings,
    fetch_failing_since=st.none() | st.floats(NOW - 7200, NOW),
)
evidence = st.builds(
    ServiceEvidence,
    service=st.just("claude"),
    probes=st.lists(probes, max_size=4).map(tuple),
    pages=st.lists(pages, max_size=2).map(tuple),
)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(evidence, st.booleans())
def test_ok_only_with_evidence_from_every_lens(ev: ServiceEvidence, healthy: bool) -> None:
    verdict = judge(ev, NOW, RULES, healthy)
    assert verdict.state in STATES
    assert verdict.reasons <= set(REASONS)
    if verdict.state != "ok":
        return
    # Some fresh lens is up, and every configured lens has read since start.
    fresh_up = any(
        p.is_up(RULES) and p.reading.freshness(NOW, RULES.stale_intervals) == "fresh"
        for p in ev.probes
    ) or any(p.reading.freshness(NOW, RULES.stale_intervals) == "fresh" for p in ev.pages)
    assert fresh_up
    assert not ev.probes or any(p.is_up(RULES) or p.is_down(RULES) for p in ev.probes)
    assert not ev.pages or any(p.reading.last is not None for p in ev.pages)


# Every probe fresh: how a blind daemon weighs them is the question.
fresh_probes = st.builds(
    ProbeEvidence,
    probe=st.sampled_from(["api", "web", "chat"]),
    reading=st.builds(Reading, st.floats(NOW - 20, NOW), st.just(30.0), st.just(NOW - 3600)),
    failing_runs=st.integers(0, 4),
    succeeded=st.booleans(),
    local_failure=st.booleans(),
)
fresh_evidence = st.builds(
    ServiceEvidence,
    service=st.just("claude"),
    probes=st.lists(fresh_probes, min_size=1, max_size=5).map(tuple),
)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(evidence | fresh_evidence)
def test_a_blind_daemon_never_makes_things_worse(ev: ServiceEvidence) -> None:
    severity = {"ok": 0, "unknown": 0, "degraded": 1, "disrupted": 2}
    seeing = judge(ev, NOW, RULES, vantage_healthy=True)
    blind = judge(ev, NOW, RULES, vantage_healthy=False)
    assert severity[str(blind.state)] <= severity[str(seeing.state)]
    if not any(p.local_failure and p.failing_runs for p in ev.probes):
        assert blind == seeing  # only local failures are set aside


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.none() | st.text(max_size=40), st.none() | st.text(max_size=200))
def test_any_failure_text_gets_a_plain_answer(reason: str | None, detail: str | None) -> None:
    assert is_local_failure(reason, detail) in (True, False)
