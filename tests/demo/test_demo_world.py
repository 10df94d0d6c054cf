"""The simulated world speaks the real shapes: the daemon's own sources read it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from outagewatch.config import parse_config
from outagewatch.demo import timeline
from outagewatch.demo.runner import DEMO_TOKEN, Timing, demo_config, seed_history
from outagewatch.demo.world import CLAUDE_APP_ID, DEMO_API_KEY, World
from outagewatch.lenses.appstore import ChartSnapshot
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.registry import build_sources
from outagewatch.observations import ProbeResult, StatusSnapshot
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.errors import SourceError
from tests.conftest import Serve

START = 1_800_000_000.0


class AlwaysFirst(random.Random):
    """Every draw is 0: the first outcome with any share is the one served."""

    def random(self) -> float:
        return 0.0


async def _read_world(
    serve: Serve, run_context: RunContext, tmp_path: Path, minute: float
) -> dict[str, object]:
    world = World(lambda: minute, lambda: START + minute * 60, AlwaysFirst(), 0.01)
    world.start = START
    url = await serve(world.app())
    (tmp_path / "api-key").write_text(DEMO_API_KEY + "\n")
    (tmp_path / "report-tokens").write_text(DEMO_TOKEN + "\n")
    config = parse_config(demo_config(tmp_path, url, Timing(4)))
    seen: dict[str, object] = {}
    for source in build_sources(config, ChatBudget()):
        try:
            observations = await run_source(source, run_context)
        except SourceError as exc:
            seen[source.key] = exc.reason
            continue
        for observation in observations:
            if isinstance(observation, ProbeResult | StatusSnapshot | ChartSnapshot):
                seen[source.key] = observation
    return seen


async def test_the_world_is_healthy_in_phase_one(
    serve: Serve, run_context: RunContext, tmp_path: Path
) -> None:
    seen = await _read_world(serve, run_context, tmp_path, 10.0)
    for key in ("claude/probe/api", "claude/probe/web", "chatgpt/probe/api", "chatgpt/probe/web"):
        result = seen[key]
        assert isinstance(result, ProbeResult) and result.success, (key, result)
    claude_page = seen["claude/status/main"]
    assert isinstance(claude_page, StatusSnapshot) and claude_page.level == 0
    openai_page = seen["chatgpt/status/main"]
    assert isinstance(openai_page, StatusSnapshot) and openai_page.components == {
        "ChatGPT": "operational",
        "Chat Completions": "operational",
    }
    chart = seen["appstore/us/top-free"]
    assert isinstance(chart, ChartSnapshot) and chart.ranks[CLAUDE_APP_ID] == 48


async def test_in_the_outage_claude_answers_529_and_the_page_admits_it_backdated(
    serve: Serve, run_context: RunContext, tmp_path: Path
) -> None:
    seen = await _read_world(serve, run_context, tmp_path, 150.0)
    api = seen["claude/probe/api"]
    assert isinstance(api, ProbeResult) and api.success is False
    assert api.reason == "overloaded" and api.status_code == 529
    web = seen["claude/probe/web"]
    assert isinstance(web, ProbeResult) and web.reason == "http_status"
    page = seen["claude/status/main"]
    assert isinstance(page, StatusSnapshot) and page.level == 2
    (incident,) = page.open_incidents
    assert incident.start == START + timeline.INCIDENT_STARTED * 60
    assert incident.created == START + timeline.INCIDENT_PUBLISHED * 60
    chart = seen["appstore/us/top-free"]
    assert isinstance(chart, ChartSnapshot) and chart.ranks[CLAUDE_APP_ID] == 1
    chatgpt = seen["chatgpt/probe/api"]
    assert isinstance(chatgpt, ProbeResult) and chatgpt.success


def test_the_story_surges_to_about_two_thousand_reports_an_hour_then_fades() -> None:
    peak = max(
        timeline.reports_per_hour("claude", m, START) for m in range(int(timeline.DEMO_MINUTES))
    )
    assert 1900 <= peak <= 2100
    assert timeline.reports_per_hour("claude", 230.0, START) == pytest.approx(
        timeline.usual_reports_per_hour("claude", START)
    )
    # The provider's errors start before the incident's own (backdated) start.
    first_failing = next(m for m in range(240) if timeline.claude_api(float(m)).overloaded > 0.2)
    assert first_failing < timeline.INCIDENT_STARTED < timeline.INCIDENT_PUBLISHED
    assert [p.number for p in timeline.PHASES] == [1, 2, 3, 4, 5]
    assert timeline.phase_at(timeline.INCIDENT_PUBLISHED).number == 4


def test_seeded_history_is_deterministic_and_covers_four_weeks() -> None:
    first = seed_history(random.Random(7), START)
    again = seed_history(random.Random(7), START)
    assert first == again
    assert min(r.time for r in first) >= START - 28 * 86400
    assert max(r.time for r in first) < START
    per_hour = len([r for r in first if r.service == "claude"]) / (28 * 24)
    assert 20 <= per_hour <= 28  # the usual level, 24/h on average
