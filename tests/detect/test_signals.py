"""Signals fed from observations, the tracker's evidence and history, and persistence."""

from __future__ import annotations

from pathlib import Path

from outagewatch.clock import FakeClock
from outagewatch.config import DisruptionConfig
from outagewatch.detect.disruption import PageEvidence, ProbeEvidence, Reading, ServiceEvidence
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import SignalDetectors
from outagewatch.detect.tracker import DisruptionTracker, ProbeStreaks, probe_evidence
from outagewatch.incidents import IncidentLog
from outagewatch.observations import ChatStats, ProbeResult, StatusIncident, StatusSnapshot
from outagewatch.persistence import StateKeeper, StatePart, single
from outagewatch.store import Store

T0 = 1_750_000_200.0  # on a 5-minute boundary


def run(time: float, success: bool | None, outcome: str | None = None, **kw: object) -> ProbeResult:
    chat = ChatStats(outcome=outcome, **kw) if outcome is not None else None  # type: ignore[arg-type]
    return ProbeResult("claude", "api", "http", time, success, 0.2, chat=chat)


def fed(signals: SignalDetectors, signal: str) -> int:
    return signals.detectors[("claude", signal)].n


def test_report_buckets_close_every_five_minutes_with_zeros_between() -> None:
    signals = SignalDetectors()
    signals.configure(DetectionSettings(), ["claude"])
    signals.open_reports("claude", T0 + 10, counted=2)
    signals.report("claude", T0 + 20)
    signals.close(T0 + 299)
    assert ("claude", "reports") not in signals.detectors  # the bucket is still open
    signals.close(T0 + 3 * 300 + 5)
    assert fed(signals, "reports") == 3
    status = signals.status[("claude", "reports")]
    assert status.last_time == T0 + 900
    assert signals.detectors[("claude", "reports")].level < 3  # the 3 reports, then zeros


def test_a_report_in_a_later_bucket_closes_the_earlier_ones() -> None:
    signals = SignalDetectors()
    signals.configure(DetectionSettings(), ["claude"])
    signals.open_reports("claude", T0, counted=0)
    signals.report("claude", T0 + 650)
    assert fed(signals, "reports") == 2
    signals.report("claude", T0 + 10)  # late: its bucket has closed
    signals.close(T0 + 900)
    assert fed(signals, "reports") == 3


def test_failure_ratio_is_per_minute_over_conclusive_service_side_runs() -> None:
    signals = SignalDetectors()
    signals.probe(run(T0 + 1, True))
    signals.probe(run(T0 + 2, False))
    signals.probe(run(T0 + 3, None))  # a challenge: neither
    signals.probe(run(T0 + 4, False, "auth"))  # our key, not the service
    signals.probe(run(T0 + 70, False))
    detector = signals.detectors[("claude", "failure_ratio")]
    assert detector.n == 1 and detector.level == 0.5
    signals.close(T0 + 200)  # the second minute; the empty third gives no point
    assert detector.n == 2 and signals.status[("claude", "failure_ratio")].last_time == T0 + 120


def test_chat_runs_feed_ttft_and_total_latency() -> None:
    signals = SignalDetectors()
    signals.probe(run(T0, True, "ok", ttft_seconds=0.4))
    signals.probe(run(T0 + 300, False, "overloaded", ttft_seconds=None))
    assert fed(signals, "ttft") == 1 and fed(signals, "latency") == 1


def test_detectors_round_trip_through_their_snapshot() -> None:
    signals = SignalDetectors()
    signals.configure(DetectionSettings(), ["claude"])
    for minute in range(50):
        signals.probe(run(T0 + 60 * minute, minute % 7 != 0, "ok", ttft_seconds=0.3 + minute / 100))
    restored = SignalDetectors()
    restored.configure(DetectionSettings(), ["claude"])
    assert restored.load(signals.snapshot()) == []
    assert restored.snapshot() == signals.snapshot()
    assert restored.status[("claude", "ttft")] == signals.status[("claude", "ttft")]
    assert restored.load({"claude/ttft": {"detector": {"version": 99}}, "claude/x": {}}) == [
        "claude/ttft",
        "claude/x",
    ]


def test_probe_streaks_skip_runs_that_say_neither() -> None:
    results = [
        run(T0, True),
        run(T0 + 30, False, "overloaded"),
        run(T0 + 60, None),
        run(T0 + 90, False, "rate_limited"),
        run(T0 + 120, False, "overloaded"),
        run(T0 + 150, False, "server_error"),
    ]
    streaks = ProbeStreaks()
    for result in results[:5]:
        streaks.observe(result)
    assert probe_evidence("api", streaks, 30.0, T0).overloaded_runs == 2
    streaks.observe(results[5])
    evidence = probe_evidence("api", streaks, 30.0, T0)
    assert (evidence.failing_runs, evidence.overloaded_runs) == (3, 0)
    assert evidence.reading.last == T0 + 150


def healthy(now: float) -> ServiceEvidence:
    return ServiceEvidence("claude", (ProbeEvidence("api", Reading(now, 30.0, T0)),))


def failing(now: float) -> ServiceEvidence:
    return ServiceEvidence("claude", (ProbeEvidence("api", Reading(now, 30.0, T0), 3),))


def page(now: float, level: int) -> ServiceEvidence:
    return ServiceEvidence("claude", (), (PageEvidence("main", level, Reading(now, 60.0, T0)),))


def test_tracker_keeps_transitions_newest_first_and_decides_leads() -> None:
    tracker = DisruptionTracker(DisruptionConfig())
    tracker.configure(DisruptionConfig(recover_after=60), ["claude"], T0)
    tracker.evaluate(healthy(T0 + 10), T0 + 10)
    tracker.evaluate(failing(T0 + 100), T0 + 100)
    log = IncidentLog()
    incident = StatusIncident("inc1", "Elevated errors", "major", T0 + 400, T0 + 450)
    snapshot = StatusSnapshot(
        "claude", "main", "statuspage", T0 + 500, "major", {}, (incident,), False
    )
    log.observe(snapshot)
    [lead] = tracker.decide_leads(log, T0 + 500)
    assert (lead.outcome, lead.seconds) == ("early", 300.0)
    assert tracker.last_lead("claude") == lead
    assert tracker.decide_leads(log, T0 + 600) == []  # decided once
    tracker.evaluate(healthy(T0 + 700), T0 + 700)
    tracker.evaluate(healthy(T0 + 800), T0 + 800)
    events = tracker.recent_events()
    assert [(e.previous, e.state) for e in events] == [
        ("disrupted", "ok"),
        ("ok", "disrupted"),
        ("unknown", "ok"),
    ]
    assert events[1].reasons == ("probes_failing",)
    assert tracker.recent_events(limit=1) == events[:1]


def test_incidents_from_before_outagewatch_watched_have_no_lead() -> None:
    tracker = DisruptionTracker(DisruptionConfig())
    tracker.configure(DisruptionConfig(), ["claude"], T0)
    log = IncidentLog()
    incident = StatusIncident("old", "Old", "minor", T0 - 3600, T0 - 3600)
    log.observe(StatusSnapshot("claude", "main", "statuspage", T0, "minor", {}, (incident,), False))
    assert tracker.decide_leads(log, T0 + 86400) == []


def test_tracker_round_trips_status_history_and_leads() -> None:
    tracker = DisruptionTracker(DisruptionConfig())
    tracker.configure(DisruptionConfig(), ["claude"], T0)
    tracker.evaluate(page(T0 + 5, 2), T0 + 5)
    log = IncidentLog()
    incident = StatusIncident("inc", "Down", "major", T0 + 1, T0 + 2)
    log.observe(
        StatusSnapshot("claude", "main", "statuspage", T0 + 5, "major", {}, (incident,), False)
    )
    tracker.decide_leads(log, T0 + 5 + 7 * 3600)
    restored = DisruptionTracker(DisruptionConfig())
    restored.configure(DisruptionConfig(), ["claude"], T0 + 9999)
    assert restored.load(tracker.snapshot()) == []
    assert restored.snapshot() == tracker.snapshot()
    assert restored.status["claude"].since == T0 + 5
    assert restored.lead_outcomes[("claude", "late")] == 1
    assert restored.load({"claude": {"format": 1, "state": "broken"}}) == ["claude"]


async def test_keeper_writes_only_what_changed_and_restores_every_part(tmp_path: Path) -> None:
    clock = FakeClock()
    store = Store(tmp_path / "state.db", clock)
    store.open()
    try:
        values: dict[str, object] = {"a": 1, "b": [1, 2]}
        whole = {"day": "x"}
        restored: dict[str, object] = {}
        parts = [
            StatePart("many", lambda: dict(values), lambda v: restored.update(many=dict(v)) or []),
            StatePart("one", *single(lambda: dict(whole), lambda v: restored.update(one=v))),
        ]
        keeper = StateKeeper(store, parts)
        assert await keeper.save() == 3
        assert await keeper.save() == 0
        values["a"] = 2
        del values["b"]
        assert await keeper.save() == 2  # a rewritten, b deleted
        assert await store.get_state("many") == {"a": 2}
        await StateKeeper(store, parts).load()
        assert restored == {"many": {"a": 2}, "one": {"day": "x"}}
    finally:
        store.close()


async def test_a_part_that_cannot_load_is_reported_and_the_others_load(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", FakeClock())
    store.open()
    try:
        await store.put_state("incidents", "state", [{"service": 1}])
        await store.put_state("other", "state", 5)
        got: list[object] = []
        log = IncidentLog()
        keeper = StateKeeper(
            store,
            [
                StatePart("incidents", *single(log.snapshot, log.load)),
                StatePart("other", *single(lambda: 5, got.append)),
            ],
        )
        await keeper.load()
        assert len(log) == 0 and got == [5]
    finally:
        store.close()
