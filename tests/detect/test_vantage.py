"""The vantage point's rules, probe streaks' local class, and restored state's freshness."""

from __future__ import annotations

import pytest

from outagewatch.config import ConfigError, DisruptionConfig, parse_config
from outagewatch.detect.disruption import ProbeEvidence, Reading, ServiceEvidence
from outagewatch.detect.tracker import DisruptionTracker, ProbeStreaks
from outagewatch.detect.vantage import ControlEvidence, is_local_failure, judge_vantage
from outagewatch.lenses.vantage import VantageConfig
from outagewatch.observations import ProbeResult

NOW = 1_750_000_000.0
STARTED = NOW - 3600
RULES = VantageConfig()
STALE = 3.0
UNKNOWN_CA = (
    "SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    "unable to get local issuer certificate (_ssl.c:1006)"
)


@pytest.mark.parametrize(
    ("reason", "detail", "local"),
    [
        ("dns", "cannot resolve api.example: Name or service not known", True),
        ("connect", "Connection refused", True),
        ("local", "too many open files", True),
        ("connect_refused", None, True),  # sub-reasons another branch adds
        ("dns/nxdomain", None, True),
        ("tls", UNKNOWN_CA, True),
        ("tls", "self-signed certificate in certificate chain", True),
        ("tls", "certificate has expired", False),  # the provider's certificate
        ("tls", None, False),
        ("timeout", None, False),
        ("http_status", "HTTP 503", False),
        ("body_mismatch", None, False),
        (None, None, False),
    ],
)
def test_local_class_reasons(reason: str | None, detail: str | None, local: bool) -> None:
    assert is_local_failure(reason, detail) is local


@pytest.mark.parametrize(
    ("sub_reason", "local"),
    [("unknown_ca", True), ("self_signed", True), ("expired", False), ("hostname_mismatch", False)],
)
def test_an_untrusted_chain_by_sub_reason_is_local_class(sub_reason: str, local: bool) -> None:
    assert is_local_failure("tls", "certificate verify failed", sub_reason) is local


def probe(failing: int = 0, local: bool = False, last: float | None = NOW - 5) -> ProbeEvidence:
    return ProbeEvidence("api", Reading(last, 30.0, STARTED), failing, 0, True, local)


def services(local: int, fine: int, provider_down: int = 0) -> list[ServiceEvidence]:
    out = [ServiceEvidence(f"l{i}", (probe(1, local=True),)) for i in range(local)]
    out += [ServiceEvidence(f"f{i}", (probe(),)) for i in range(fine)]
    out += [ServiceEvidence(f"d{i}", (probe(3),)) for i in range(provider_down)]
    return out


def control(name: str, failing: int, last: float | None = NOW - 5) -> ControlEvidence:
    return ControlEvidence(name, Reading(last, 30.0, STARTED), failing)


def test_most_services_failing_locally_at_once_is_unhealthy_without_controls() -> None:
    verdict = judge_vantage([], services(local=5, fine=4), NOW, RULES, STALE)
    assert not verdict.healthy
    assert (verdict.services, verdict.services_failing_locally) == (9, 5)
    assert verdict.local_share == pytest.approx(5 / 9)


def test_a_few_services_failing_locally_or_providers_failing_is_healthy() -> None:
    assert judge_vantage([], services(local=2, fine=7), NOW, RULES, STALE).healthy
    # Providers answering 503 say nothing against our network.
    assert judge_vantage([], services(local=0, fine=1, provider_down=8), NOW, RULES, STALE).healthy


def test_too_few_services_read_do_not_count() -> None:
    assert judge_vantage([], services(local=2, fine=0), NOW, RULES, STALE).healthy
    rules = VantageConfig(min_services=2)
    assert not judge_vantage([], services(local=2, fine=0), NOW, rules, STALE).healthy


def test_failing_controls_alone_make_it_unhealthy() -> None:
    controls = [control("resolver", 2), control("reference", 0)]
    verdict = judge_vantage(controls, services(local=0, fine=9), NOW, RULES, STALE)
    assert not verdict.healthy and verdict.failing_controls == ("resolver",)
    assert judge_vantage([control("resolver", 1)], [], NOW, RULES, STALE).healthy  # one run


def test_answering_controls_outweigh_the_correlation_but_one_failed_run_does_not() -> None:
    many = services(local=8, fine=1)
    answering = [control("resolver", 0), control("reference", 0)]
    assert judge_vantage(answering, many, NOW, RULES, STALE).healthy
    wavering = [control("resolver", 1), control("reference", 0)]
    assert not judge_vantage(wavering, many, NOW, RULES, STALE).healthy
    stale = [control("resolver", 0, last=NOW - 3600)]
    assert not judge_vantage(stale, many, NOW, RULES, STALE).healthy


def result(time: float, success: bool, reason: str | None = None) -> ProbeResult:
    return ProbeResult("claude", "api", "http", time, success, 0.1, reason)


def test_streaks_know_whether_the_probe_ever_succeeded_and_how_it_fails_now() -> None:
    streaks = ProbeStreaks()
    streaks.observe(result(NOW, False, "dns"))
    assert (streaks.succeeded, streaks.local, streaks.failing) == (False, True, 1)
    streaks.observe(result(NOW + 1, False, "http_status"))  # the provider answered
    assert (streaks.local, streaks.failing) == (False, 2)
    streaks.observe(result(NOW + 2, True))
    assert (streaks.succeeded, streaks.local, streaks.failing) == (True, False, 0)


def down(now: float) -> ServiceEvidence:
    never = ProbeEvidence("api", Reading(now, 30.0, now - 1), 1, 0, False)
    return ServiceEvidence("claude", (never,))


def restart(stored_state: str, judged: float | None, now: float) -> DisruptionTracker:
    """A second daemon's tracker, loaded with what the first one saved."""
    first = DisruptionTracker(DisruptionConfig())
    first.configure(DisruptionConfig(), ["claude"], judged or now - 100)
    snapshot = first.snapshot()
    snapshot["claude"]["state"] = stored_state
    snapshot["claude"]["judged"] = judged
    if judged is None:
        del snapshot["claude"]["judged"]  # a store written before the field existed
    second = DisruptionTracker(DisruptionConfig())
    second.configure(DisruptionConfig(restored_fresh_for=60), ["claude"], now)
    assert second.load(snapshot) == []
    return second


def test_a_fresh_restored_state_stands_in_until_evidence_and_no_longer() -> None:
    tracker = restart("disrupted", NOW - 10, NOW)
    assert tracker.evaluate(down(NOW), NOW) is None
    assert tracker.status["claude"].state == "disrupted"
    moved = tracker.evaluate(down(NOW + 60), NOW + 60)  # 70 s after it was judged
    assert moved is not None and (moved.previous, moved.state) == ("disrupted", "unknown")
    assert moved.reasons == ("no_successful_probe_yet",)


@pytest.mark.parametrize("judged", [NOW - 600, None])
def test_a_stale_or_undated_restored_ok_is_not_evidence(judged: float | None) -> None:
    tracker = restart("ok", judged, NOW)
    moved = tracker.evaluate(down(NOW), NOW)
    assert moved is not None and (moved.previous, moved.state) == ("ok", "unknown")


def test_the_snapshot_says_when_each_service_was_judged() -> None:
    tracker = DisruptionTracker(DisruptionConfig())
    tracker.configure(DisruptionConfig(), ["claude"], NOW)
    tracker.evaluate(down(NOW + 5), NOW + 5)
    assert tracker.snapshot()["claude"]["judged"] == NOW + 5


def test_malformed_vantage_config_names_the_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "vantage": {
                    "controls": {"resolver": {"kind": "dns", "host": "bad host!"}},
                    "local_failure_share": 2,
                }
            }
        )
    text = "\n".join(caught.value.errors)
    assert "vantage -> controls -> resolver" in text and "host" in text
    assert "vantage -> local_failure_share" in text


@pytest.mark.parametrize("judged", ["yesterday", [], {"t": 1}])
def test_a_malformed_stored_judged_time_is_reported_and_the_service_starts_unknown(
    judged: object,
) -> None:
    first = DisruptionTracker(DisruptionConfig())
    first.configure(DisruptionConfig(), ["claude"], NOW - 100)
    snapshot = first.snapshot()
    snapshot["claude"]["state"] = "ok"
    snapshot["claude"]["judged"] = judged
    second = DisruptionTracker(DisruptionConfig())
    second.configure(DisruptionConfig(), ["claude"], NOW)
    assert second.load(snapshot) == ["claude"]
    assert second.status["claude"].state == "unknown" and "claude" not in second.restored
