"""The traffic lens past the source: samples in, a two-sided detector per service x
query, `traffic_spike` / `traffic_drop` in the service's reasons, metrics and card."""

from __future__ import annotations

from typing import Any

from outagewatch.clock import FakeClock
from outagewatch.config import Config, parse_config
from outagewatch.detect.disruption import REASON_LENS
from outagewatch.detect.signals import traffic_signal
from outagewatch.keys import traffic_source_key
from outagewatch.lenses.traffic import TrafficLens, TrafficSample
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from tests.scrape import scrape

START = 1_700_000_000.0


def config(**detection: Any) -> Config:
    return parse_config(
        {
            "detection": {"warmup_s": 0, "warmup_points": 8, **detection},
            "services": {
                "claude": {
                    "traffic": {
                        "requests": {
                            "url": "http://127.0.0.1:1",
                            "query": "sum(rate(x[1m]))",
                            "interval": "1s",
                            "timeout": "500ms",
                        }
                    }
                }
            },
        }
    )


def run(values: list[float]) -> Pipeline:
    """Feed one sample a second to a pipeline configured like the daemon, judging each time."""
    clock = FakeClock(START)
    pipeline = Pipeline(clock)
    cfg = config()
    pipeline.configure_detection(cfg, {traffic_source_key("claude", "requests")})
    for value in values:
        clock.advance(1.0)
        pipeline.ingest([TrafficSample("claude", "requests", clock.time(), value, 1)])
        for _ in pipeline.detect_steps():
            pass
    return pipeline


def steady() -> list[float]:
    return [100.0 + i % 3 for i in range(15)]


def reasons(pipeline: Pipeline) -> frozenset[str]:
    return pipeline.state.disruption.status["claude"].reasons


def test_a_surge_is_traffic_spike_a_warning_sign_of_its_own_lens() -> None:
    pipeline = run(steady())
    assert not reasons(pipeline) & {"traffic_spike", "traffic_drop"}
    pipeline = run([*steady(), 400.0])
    assert "traffic_spike" in reasons(pipeline)
    assert "traffic_drop" not in reasons(pipeline)
    # One lens, a warning sign: degraded, not disrupted.
    assert pipeline.state.disruption.status["claude"].state == "degraded"
    assert REASON_LENS["traffic_spike"] == REASON_LENS["traffic_drop"] == "traffic"


def test_a_drop_is_traffic_drop() -> None:
    pipeline = run([*steady(), 5.0, 5.0])
    assert "traffic_drop" in reasons(pipeline)
    assert "traffic_spike" not in reasons(pipeline)
    status = pipeline.state.signals.status[("claude", traffic_signal("requests"))]
    assert status.verdict.active and status.direction == -1.0


async def test_the_value_and_state_show_on_metrics_and_the_card() -> None:
    pipeline = run([*steady(), 5.0])
    text = (await scrape(pipeline.state)).text
    assert 'outagewatch_traffic_value{query="requests",service="claude"} 5.0' in text
    assert 'outagewatch_traffic_series{query="requests",service="claude"} 1.0' in text
    document = StatusQuery(pipeline.state).document(config(), START + 100).json()
    (service,) = document["services"]
    assert service["traffic"] == [
        {
            "query": "requests",
            "enabled": True,
            "value": 5.0,
            "time": service["traffic"][0]["time"],
            "state": "drop",
        }
    ]


def test_a_removed_query_forgets_its_detector_and_value() -> None:
    pipeline = run([*steady(), 400.0])
    empty = parse_config({"services": {"claude": {}}})
    pipeline.configure_detection(empty, set())
    pipeline.retain(set(), set())
    assert ("claude", traffic_signal("requests")) not in pipeline.state.signals.detectors
    assert pipeline.state.lenses.of(TrafficLens) == {}


def test_detectors_survive_a_restart_through_their_snapshot() -> None:
    pipeline = run([*steady(), 400.0])
    snapshot = pipeline.state.signals.snapshot()
    restored = Pipeline(FakeClock(START))
    restored.configure_detection(config(), {traffic_source_key("claude", "requests")})
    assert restored.state.signals.load(snapshot) == []
    status = restored.state.signals.status[("claude", traffic_signal("requests"))]
    assert status.verdict.active and status.direction == 1.0
