"""The disruption rules on fixed evidence at a fixed time, the hold on recovery, lead times."""

from __future__ import annotations

import pytest

from outagewatch.config import DisruptionConfig
from outagewatch.detect.disruption import (
    REASONS,
    STATES,
    DisruptionStatus,
    Lead,
    PageEvidence,
    ProbeEvidence,
    Reading,
    ServiceEvidence,
    SpikeEvidence,
    Transition,
    Verdict,
    incident_lead,
    judge,
    step,
)

NOW = 1_750_000_000.0
RULES = DisruptionConfig()
STARTED = NOW - 3600


def fresh(interval: float = 30.0) -> Reading:
    return Reading(NOW - 10, interval, STARTED)


def probe(
    name: str,
    failing: int = 0,
    overloaded: int = 0,
    reading: Reading | None = None,
    succeeded: bool = True,
    local: bool = False,
) -> ProbeEvidence:
    return ProbeEvidence(name, reading or fresh(), failing, overloaded, succeeded, local)


def spike(active: bool = True, interval: float = 300.0) -> SpikeEvidence:
    return SpikeEvidence(active, Reading(NOW - 60, interval, STARTED))


def evidence(**kwargs: object) -> ServiceEvidence:
    return ServiceEvidence("claude", **kwargs)  # type: ignore[arg-type]


def verdict_of(ev: ServiceEvidence) -> tuple[str | None, set[str]]:
    verdict = judge(ev, NOW, RULES)
    return verdict.state, set(verdict.reasons)


def test_a_fresh_healthy_probe_makes_the_service_ok() -> None:
    assert verdict_of(evidence(probes=(probe("api"),))) == ("ok", set())


def test_probes_failing_for_enough_runs_on_half_the_probes_is_disrupted() -> None:
    ev = evidence(probes=(probe("api", failing=3), probe("web")))
    assert verdict_of(ev) == ("disrupted", {"probes_failing"})


def test_fewer_failed_runs_than_the_threshold_is_still_ok() -> None:
    assert verdict_of(evidence(probes=(probe("api", failing=2),))) == ("ok", set())


def test_a_probe_that_never_succeeded_is_not_up() -> None:
    # Issue 18: "✓ OK" beside "down: dns · last success: never" after a start.
    never = probe("api", failing=2, succeeded=False)
    assert verdict_of(evidence(probes=(never,))) == ("unknown", {"no_successful_probe_yet"})
    # ... while a probe that did succeed keeps the service ok through the same two failures.
    assert verdict_of(evidence(probes=(never, probe("web", failing=2)))) == ("ok", set())


def test_a_conclusive_failure_at_start_is_disrupted_without_waiting_for_other_lenses() -> None:
    starting = Reading(None, 60.0, NOW - 20)
    ev = evidence(
        probes=(probe("api", failing=3, succeeded=False),),
        pages=(PageEvidence("main", 0, starting),),
    )
    assert verdict_of(ev) == ("disrupted", {"probes_failing"})


def test_every_lens_must_have_read_before_ok() -> None:
    starting = Reading(None, 60.0, NOW - 20)
    ev = evidence(probes=(probe("api"),), pages=(PageEvidence("main", 0, starting),))
    assert verdict_of(ev) == ("unknown", {"official_not_read_yet"})
    failing = PageEvidence("main", 0, starting, fetch_failing_since=NOW - 15)
    assert verdict_of(evidence(probes=(probe("api"),), pages=(failing,))) == (
        "unknown",
        {"official_fetch_failing"},
    )
    # Once read, a page whose fetches fail later is only stale: the probes vouch alone.
    read_once = PageEvidence("main", 0, Reading(NOW - 3000, 60.0, STARTED), NOW - 2900)
    assert verdict_of(evidence(probes=(probe("api"),), pages=(read_once,))) == ("ok", set())


def test_local_failures_are_inconclusive_while_the_vantage_point_is_unhealthy() -> None:
    dns = probe("api", failing=5, local=True)
    ev = evidence(probes=(dns,))
    assert verdict_of(ev) == ("disrupted", {"probes_failing"})  # healthy vantage: the provider
    verdict = judge(ev, NOW, RULES, vantage_healthy=False)
    assert (verdict.state, set(verdict.reasons)) == ("unknown", {"vantage_unhealthy"})
    # A provider answering 503 is still its own outage, whatever our network does.
    answered = evidence(probes=(probe("api", failing=5),))
    assert judge(answered, NOW, RULES, vantage_healthy=False).state == "disrupted"
    # An official major incident still counts.
    major = evidence(probes=(dns,), pages=(PageEvidence("main", 2, fresh(60)),))
    assert judge(major, NOW, RULES, vantage_healthy=False).state == "disrupted"


def test_one_failing_probe_of_three_is_degraded() -> None:
    ev = evidence(probes=(probe("api", failing=5), probe("web"), probe("chat")))
    assert verdict_of(ev) == ("degraded", {"some_probes_failing"})


def test_a_stale_failing_probe_counts_for_nothing() -> None:
    old = Reading(NOW - 3600, 30.0, STARTED)
    ev = evidence(probes=(probe("api", failing=9, reading=old), probe("web")))
    assert verdict_of(ev) == ("ok", set())


def test_overloaded_chat_answers_are_degraded() -> None:
    ev = evidence(probes=(probe("chat", failing=2, overloaded=2, reading=fresh(300)),))
    assert verdict_of(ev) == ("degraded", {"chat_overloaded"})


def test_a_ttft_spike_is_degraded() -> None:
    ev = evidence(probes=(probe("api"),), spikes={"ttft": spike(interval=300)})
    assert verdict_of(ev) == ("degraded", {"ttft_spike"})


def test_a_report_spike_is_degraded_and_a_stale_spike_is_not() -> None:
    ev = evidence(probes=(probe("api"),), spikes={"reports": spike()})
    assert verdict_of(ev) == ("degraded", {"report_spike"})
    stale = SpikeEvidence(True, Reading(NOW - 7200, 300.0, STARTED))
    assert verdict_of(evidence(probes=(probe("api"),), spikes={"reports": stale})) == ("ok", set())


def test_an_inactive_spike_sets_nothing() -> None:
    ev = evidence(probes=(probe("api"),), spikes={"reports": spike(active=False)})
    assert verdict_of(ev) == ("ok", set())


def test_official_minor_is_degraded_and_major_is_disrupted() -> None:
    minor = evidence(pages=(PageEvidence("main", 1, fresh(60)),))
    assert verdict_of(minor) == ("degraded", {"official_minor"})
    major = evidence(pages=(PageEvidence("main", 2, fresh(60)),))
    assert verdict_of(major) == ("disrupted", {"official_major"})


def test_warning_signs_from_two_lenses_are_disrupted() -> None:
    ev = evidence(probes=(probe("api"),), spikes={"reports": spike(), "ttft": spike()})
    assert verdict_of(ev) == ("disrupted", {"report_spike", "ttft_spike"})


def test_two_signs_from_the_same_lens_are_only_degraded() -> None:
    ev = evidence(
        probes=(probe("chat", overloaded=2, reading=fresh(300)),), spikes={"ttft": spike()}
    )
    assert verdict_of(ev) == ("degraded", {"chat_overloaded", "ttft_spike"})


def test_a_rank_surge_alone_is_a_reason_but_not_a_disruption() -> None:
    ev = evidence(probes=(probe("api"),), spikes={"rank": spike(interval=900)})
    assert verdict_of(ev) == ("ok", {"rank_surge"})
    with_reports = evidence(
        probes=(probe("api"),), spikes={"rank": spike(interval=900), "reports": spike()}
    )
    assert verdict_of(with_reports) == ("degraded", {"rank_surge", "report_spike"})


def test_no_fresh_lens_is_unknown() -> None:
    old = Reading(NOW - 3600, 30.0, STARTED)
    ev = evidence(probes=(probe("api", reading=old),), pages=(PageEvidence("main", 0, old),))
    assert verdict_of(ev) == ("unknown", {"readings_stale"})
    assert verdict_of(evidence()) == ("unknown", {"readings_stale"})


def test_lenses_that_have_not_read_yet_are_unknown_with_the_reason() -> None:
    starting = Reading(None, 30.0, NOW - 20)
    assert verdict_of(evidence(probes=(probe("api", reading=starting),))) == (
        "unknown",
        {"no_successful_probe_yet"},
    )


def test_reports_alone_never_vouch_for_a_service() -> None:
    assert verdict_of(evidence(spikes={"reports": spike(active=False)})) == (
        "unknown",
        {"readings_stale"},
    )


def test_every_reason_and_state_is_a_known_label_value() -> None:
    assert STATES == ("ok", "degraded", "disrupted", "unknown")
    assert set(REASONS) == {
        "probes_failing",
        "some_probes_failing",
        "failure_ratio_spike",
        "chat_overloaded",
        "ttft_spike",
        "latency_spike",
        "report_spike",
        "official_minor",
        "official_major",
        "rank_surge",
        "traffic_spike",
        "traffic_drop",
        "no_successful_probe_yet",
        "official_not_read_yet",
        "official_fetch_failing",
        "readings_stale",
        "vantage_unhealthy",
    }


# -- the status over time --------------------------------------------------


def test_worse_states_are_taken_at_once_and_milder_ones_after_the_hold() -> None:
    rules = DisruptionConfig(recover_after=120)
    status = DisruptionStatus("ok", NOW - 600)
    status = step(status, Verdict("disrupted", frozenset({"probes_failing"})), NOW, rules)
    assert (status.state, status.since) == ("disrupted", NOW)
    ok = Verdict("ok", frozenset())
    held = step(status, ok, NOW + 30, rules)
    assert (held.state, held.since, held.milder) == ("disrupted", NOW, "ok")
    assert held.reasons == frozenset()
    still = step(held, Verdict("degraded", frozenset({"report_spike"})), NOW + 100, rules)
    assert still.state == "disrupted" and still.milder_since == NOW + 30
    recovered = step(still, ok, NOW + 150, rules)
    assert (recovered.state, recovered.since) == ("ok", NOW + 150)


def test_a_relapse_during_the_hold_restarts_it() -> None:
    rules = DisruptionConfig(recover_after=120)
    status = DisruptionStatus("disrupted", NOW)
    status = step(status, Verdict("ok", frozenset()), NOW + 10, rules)
    status = step(status, Verdict("disrupted", frozenset({"probes_failing"})), NOW + 20, rules)
    assert status.milder is None and status.since == NOW
    status = step(status, Verdict("ok", frozenset()), NOW + 100, rules)
    assert status.state == "disrupted"


def test_no_verdict_keeps_the_restored_state_and_its_since() -> None:
    status = DisruptionStatus("disrupted", NOW - 900)
    kept = step(status, Verdict(None, frozenset()), NOW, RULES)
    assert (kept.state, kept.since) == ("disrupted", NOW - 900)


def test_unknown_is_entered_and_left_at_once() -> None:
    status = step(
        DisruptionStatus("disrupted", NOW), Verdict("unknown", frozenset()), NOW + 1, RULES
    )
    assert (status.state, status.since) == ("unknown", NOW + 1)
    status = step(status, Verdict("ok", frozenset()), NOW + 2, RULES)
    assert (status.state, status.since) == ("ok", NOW + 2)


# -- detection lead ----------------------------------------------------------


def moves(*changes: tuple[float, str, str]) -> list[Transition]:
    return [Transition("claude", NOW + t, before, after, ()) for t, before, after in changes]


HOUR = 3600.0


def test_flagged_before_the_incident_start_is_a_positive_lead() -> None:
    history = moves((0, "unknown", "ok"), (100, "ok", "degraded"), (400, "degraded", "disrupted"))
    assert incident_lead(history, NOW + 700, NOW + 900, 6 * HOUR) == Lead("early", 600.0)


def test_flagged_after_the_incident_start_is_a_negative_lead() -> None:
    history = moves((0, "unknown", "ok"), (100, "ok", "degraded"), (200, "degraded", "ok"))
    history += moves((1000, "ok", "disrupted"))
    assert incident_lead(history, NOW + 700, NOW + 1200, 6 * HOUR) == Lead("late", -300.0)


def test_undecided_until_flagged_or_the_window_passes() -> None:
    history = moves((0, "unknown", "ok"))
    assert incident_lead(history, NOW + 100, NOW + 200, HOUR) is None
    assert incident_lead(history, NOW + 100, NOW + 100 + HOUR + 1, HOUR) == Lead("missed", None)
    late_flag = history + moves((100 + 2 * HOUR, "ok", "degraded"))
    assert incident_lead(late_flag, NOW + 100, NOW + 3 * HOUR, HOUR) == Lead("missed", None)


@pytest.mark.parametrize("start", [NOW + 50, NOW + 100])
def test_the_flag_must_still_hold_at_the_start(start: float) -> None:
    history = moves((0, "ok", "degraded"), (50, "degraded", "ok"), (300, "ok", "degraded"))
    expected = Lead("late", start - (NOW + 300))
    assert incident_lead(history, start, NOW + 400, HOUR) == expected
