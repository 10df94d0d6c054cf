"""The status page and its JSON twin, from a pipeline fed real observations."""

from __future__ import annotations

import re

import aiohttp
from prometheus_client import CollectorRegistry

from outagewatch.clock import FakeClock
from outagewatch.config import parse_config
from outagewatch.exposition import MetricsPage
from outagewatch.history import MAX_EVENTS, StatusHistory
from outagewatch.lenses.appstore import ChartSnapshot
from outagewatch.observations import (
    ChatStats,
    ProbeResult,
    Report,
    StatusIncident,
    StatusSnapshot,
)
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from outagewatch.web.server import WebContext, make_app
from outagewatch.web.status import render_status_page
from tests.conftest import Serve

CONFIG = {
    "services": {
        "claude": {
            "display_name": "Claude",
            "probes": {
                "api": {"kind": "anthropic", "model": "m", "api_key_file": "/dev/null"},
                "web": {"kind": "http", "url": "http://127.0.0.1:1/"},
            },
            "appstore": {"app_id": "6473753684"},
            "reports": {"public": True},
        }
    }
}


def _chat(clock: FakeClock, ok: bool, ttft: float) -> ProbeResult:
    return ProbeResult(
        "claude",
        "api",
        "anthropic",
        clock.time(),
        ok,
        ttft + 0.1,
        reason=None if ok else "overloaded",
        status_code=200 if ok else 529,
        chat=ChatStats("ok" if ok else "overloaded", ttft_seconds=ttft if ok else None),
    )


def _fed_pipeline() -> tuple[Pipeline, FakeClock]:
    clock = FakeClock()
    pipeline = Pipeline(clock)
    for minute in range(60):
        failing = minute >= 50
        pipeline.ingest([_chat(clock, not failing, 0.4 + minute / 100)])
        pipeline.ingest([Report("claude", "app", clock.time())] * (20 if failing else 1))
        clock.advance(60)
    pipeline.ingest(
        [
            ChartSnapshot(
                "us", "top-free", clock.time(), 100, {"6473753684": 1}, {"claude": "6473753684"}
            ),
            StatusSnapshot(
                "claude",
                "main",
                "statuspage",
                clock.time(),
                "major",
                {"claude.ai": "major_outage"},
                (StatusIncident("i1", "Elevated errors", "major", clock.time() - 600, None),),
                False,
            ),
        ]
    )
    return pipeline, clock


def test_page_and_json_tell_the_same_story_of_an_outage() -> None:
    pipeline, clock = _fed_pipeline()
    config = parse_config(CONFIG)
    typed = StatusQuery(pipeline.state).document(config, clock.time())
    document = typed.json()
    (claude,) = document["services"]
    # No judgement yet (the tracker was never configured): unknown, in words.
    assert claude["disruption"] == {
        "state": "unknown",
        "since": None,
        "reasons": [],
        "reason_texts": [],
        "lead": None,
    }
    api = claude["probes"][0]
    assert (api["result"], api["reason"]) == ("down", "overloaded")
    assert claude["probes"][1]["result"] == "no result yet"
    assert claude["official"]["level_name"] == "major"
    assert claude["appstore"] == [{"country": "us", "chart": "top-free", "rank": 1, "depth": 100}]
    assert claude["reports"]["total"] == 50 + 10 * 20
    assert claude["reports"]["page"] == "/report/claude"
    charts = claude["charts"]
    assert charts["probe_success_percent"][-1][1] == 0.0
    assert charts["probe_success_percent"][0][1] == 100.0
    assert len(charts["ttft_seconds"]["api"]) == 50
    assert max(count for _, count in charts["reports_per_5m"]) == 100
    assert [e["kind"] for e in document["events"]] == ["incident_opened", "probe_down"]

    page = render_status_page(typed, clock.time(), 30)
    assert '<meta http-equiv=refresh content="30">' in page
    assert "✕ down: overloaded" in page  # a symbol and words, not only red
    assert '<span class="state unknown">? Unknown</span>' in page
    assert "Official level: <strong>major</strong>" in page
    assert '<a href="/report/claude">Report a problem</a>' in page
    # Every chart is an image with a title and a description in words.
    charts_svg = re.findall(r"<svg class=chart role=img[^>]*aria-labelledby=\"([^\"]+)\"", page)
    assert len(charts_svg) == 4
    for labels in charts_svg:
        title_id, desc_id = labels.split()
        assert f'<title id="{title_id}">' in page and f'<desc id="{desc_id}">' in page
    assert "lowest 0 %" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_history_keeps_only_its_window_and_notes_transitions_once() -> None:
    clock = FakeClock()
    history = StatusHistory(window=3600.0)
    for minute in range(120):
        ok = not 30 <= minute < 40
        history.probe(_chat(clock, ok, 0.5))
        history.report(Report("claude", "app", clock.time()))
        clock.advance(60)
    last = clock.time() - 60
    # Asked for everything, the ring gives what it holds: the window's 60 minutes
    # and the two minutes at its edges, nothing older.
    points = history.ttft_points("claude", 0.0)["api"]
    assert len(points) == 62 and points[0][0] == last - 61 * 60
    assert {ttft for _, ttft in points} == {0.5}
    assert len(history.ttft_points("claude", last - 3600)["api"]) == 61
    success = history.success_percent("claude", 0.0)
    assert len(success) <= 3600 / 300 + 2 and success[-1][0] <= last + 300
    assert [percent for _, percent in success] == [100.0] * len(success)
    assert len(history.services["claude"].report_buckets) <= 13
    assert [e.kind for e in history.events] == ["probe_down", "probe_up"]
    for _ in range(MAX_EVENTS + 10):
        history.event(clock.time(), "claude", "probe_down", "x")
    assert len(history.events) == MAX_EVENTS


async def test_routes_serve_the_page_and_the_json(serve: Serve) -> None:
    pipeline, clock = _fed_pipeline()
    config = parse_config(CONFIG)

    async def reload() -> bool:
        return True

    ctx = WebContext(StatusQuery(pipeline.state), lambda: config, lambda: True, reload, clock=clock)
    url = await serve(make_app(ctx, MetricsPage(StatusQuery(pipeline.state), CollectorRegistry())))
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/api/v1/status") as response:
            assert response.status == 200
            document = await response.json()
        assert document == StatusQuery(pipeline.state).document(config, clock.time()).json()
        async with session.get(url + "/?refresh=1") as response:
            page = await response.text()
            assert response.headers["Cache-Control"] == "no-store"
        assert '<meta http-equiv=refresh content="5">' in page  # never faster than 5 s
