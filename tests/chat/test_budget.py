"""Daily budgets: caps per probe and per service, a pause until the next UTC day."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from outagewatch.clock import FakeClock
from outagewatch.config import ChatPrice, parse_config
from outagewatch.lenses.chat.budget import ChatBudget, estimated_cost, next_utc_midnight
from outagewatch.observations import ChatBudgetStatus, ProbeResult
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.client import HttpClients

from .conftest import Reply, StartProvider, anthropic_probe, frames_of, source_for

LATE_EVENING = datetime(2026, 11, 27, 23, 50, tzinfo=UTC).timestamp()


def config(probes: dict[str, Any], service_budget: dict[str, Any] | None = None) -> Any:
    service: dict[str, Any] = {"probes": probes}
    if service_budget is not None:
        service["chat_budget"] = service_budget
    return parse_config({"services": {"claude": service}})


def chat(**extra: Any) -> dict[str, Any]:
    return {"kind": "anthropic", "model": "m", "api_key_file": "/run/key", **extra}


def test_probe_cap_refuses_once_reached_and_logs_once_per_day() -> None:
    budget = ChatBudget()
    budget.configure(config({"a": chat(budget={"requests_per_day": 2})}))
    assert budget.admit("claude", "a", LATE_EVENING).allowed
    assert budget.remaining("claude", "a", LATE_EVENING) == {"requests": 0.5, "tokens": 1.0}
    assert budget.admit("claude", "a", LATE_EVENING).allowed
    refused = budget.admit("claude", "a", LATE_EVENING)
    assert not refused.allowed and refused.resource == "requests" and refused.first_refusal
    assert refused.resumes_at == datetime(2026, 11, 28, tzinfo=UTC).timestamp()
    assert not budget.admit("claude", "a", LATE_EVENING).first_refusal


def test_service_cap_spans_its_probes() -> None:
    budget = ChatBudget()
    budget.configure(config({"a": chat(), "b": chat()}, service_budget={"tokens_per_day": 1000}))
    assert budget.admit("claude", "a", LATE_EVENING).allowed
    budget.spend("claude", "a", LATE_EVENING, 1000, 0.0)
    # Probe b spent nothing, but its service did.
    assert budget.remaining("claude", "b", LATE_EVENING)["tokens"] == 0.0
    refused = budget.admit("claude", "b", LATE_EVENING)
    assert not refused.allowed and refused.resource == "tokens"


def test_cost_cap_from_configured_prices() -> None:
    price = ChatPrice(input_per_million_tokens=1.0, output_per_million_tokens=5.0)
    assert estimated_cost(price, 1_000_000, 200_000) == pytest.approx(2.0)
    assert estimated_cost(None, 1_000_000, 200_000) == 0.0
    budget = ChatBudget()
    budget.configure(
        config(
            {
                "a": chat(
                    budget={"cost_per_day": 0.01},
                    price={"input_per_million_tokens": 1, "output_per_million_tokens": 5},
                )
            }
        )
    )
    budget.admit("claude", "a", LATE_EVENING)
    budget.spend("claude", "a", LATE_EVENING, 2000, estimated_cost(price, 1000, 1000))
    assert budget.remaining("claude", "a", LATE_EVENING)["cost"] == pytest.approx(0.4)


def test_snapshot_round_trips_today_and_ignores_an_earlier_day() -> None:
    budget = ChatBudget()
    budget.configure(config({"a": chat(budget={"requests_per_day": 10})}))
    budget.admit("claude", "a", LATE_EVENING)
    budget.spend("claude", "a", LATE_EVENING, 145, 0.25)
    snapshot = budget.snapshot()
    assert snapshot == {
        "day": "2026-11-27",
        "usage": [{"service": "claude", "probe": "a", "requests": 1, "tokens": 145, "cost": 0.25}],
    }
    restored = ChatBudget()
    restored.configure(config({"a": chat(budget={"requests_per_day": 10})}))
    restored.load(snapshot, LATE_EVENING + 60)
    assert restored.snapshot() == snapshot
    tomorrow = ChatBudget()
    tomorrow.load(snapshot, LATE_EVENING + 3600)
    assert tomorrow.snapshot() == {"day": "2026-11-28", "usage": []}


def test_malformed_snapshot_is_an_error_and_changes_nothing() -> None:
    budget = ChatBudget()
    budget.admit("claude", "a", LATE_EVENING)
    before = budget.snapshot()
    with pytest.raises(ValueError, match="malformed chat budget snapshot"):
        budget.load({"day": "2026-11-27", "usage": [{"service": "claude"}]}, LATE_EVENING)
    assert budget.snapshot() == before


def test_reload_keeps_todays_usage() -> None:
    budget = ChatBudget()
    budget.configure(config({"a": chat(budget={"requests_per_day": 2})}))
    budget.admit("claude", "a", LATE_EVENING)
    budget.configure(config({"a": chat(budget={"requests_per_day": 4})}))
    assert budget.remaining("claude", "a", LATE_EVENING)["requests"] == 0.75


def test_next_midnight() -> None:
    assert next_utc_midnight(LATE_EVENING) - LATE_EVENING == 600


async def test_probe_pauses_at_its_cap_and_resumes_after_utc_midnight(
    provider: StartProvider, http_clients: HttpClients, key_file: Path
) -> None:
    clock = FakeClock(LATE_EVENING)
    ctx = RunContext(http=http_clients, clock=clock, log=structlog.get_logger("test"))
    fake = await provider(Reply(frames_of("anthropic-sse-stream.txt")))
    probe = anthropic_probe(fake.base_url, key_file, budget={"requests_per_day": 2})
    budget = ChatBudget()
    budget.configure(config({"chat": probe.model_dump(mode="json")}))
    source = source_for(probe, budget)
    with capture_logs() as logs:
        runs = []
        for _ in range(4):
            runs.append(await run_source(source, ctx))
            clock.advance(60)
    assert [type(o).__name__ for o in runs[0]] == ["ProbeResult", "ChatBudgetStatus"]
    first_status = runs[0][1]
    assert isinstance(first_status, ChatBudgetStatus)
    assert first_status.remaining == {"requests": 0.5, "tokens": 1 - 145 / 50_000}
    assert not first_status.exhausted
    # The second run used the last request: exhausted, and the next two only report it.
    assert isinstance(runs[1][1], ChatBudgetStatus) and runs[1][1].exhausted
    for paused in runs[2:]:
        assert len(paused) == 1 and isinstance(paused[0], ChatBudgetStatus)
        assert paused[0].exhausted and paused[0].remaining["requests"] == 0.0
    assert len(fake.requests) == 2
    exhausted_logs = [e for e in logs if e["event"] == "chat_budget_exhausted"]
    assert len(exhausted_logs) == 1
    assert exhausted_logs[0]["resource"] == "requests"
    assert exhausted_logs[0]["resumes_at"] == "2026-11-28T00:00:00+00:00"

    clock.advance(600)  # past 00:00 UTC
    after = await run_source(source, ctx)
    assert isinstance(after[0], ProbeResult) and after[0].success
    assert isinstance(after[1], ChatBudgetStatus) and not after[1].exhausted
    assert after[1].remaining["requests"] == 0.5
    assert len(fake.requests) == 3


async def test_stream_without_usage_is_charged_the_most_it_could_cost(
    provider: StartProvider, http_clients: HttpClients, key_file: Path
) -> None:
    frames = [f.replace(b'"usage"', b'"no_usage"') for f in frames_of("anthropic-sse-stream.txt")]
    ctx = RunContext(http=http_clients, clock=FakeClock(LATE_EVENING), log=structlog.get_logger())
    fake = await provider(Reply(frames))
    probe = anthropic_probe(fake.base_url, key_file, budget={"tokens_per_day": 1000})
    budget = ChatBudget()
    budget.configure(config({"chat": probe.model_dump(mode="json")}))
    await run_source(source_for(probe, budget), ctx)
    (row,) = budget.snapshot()["usage"]
    assert row["tokens"] == len(probe.prompt) // 2 + 16 + probe.max_tokens
