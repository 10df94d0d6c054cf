"""The status page read at 3 a.m.: the summary line, worst first, failures in words,
state changes apart from probe noise, and the glitches seen (each from a fixed input)."""

from __future__ import annotations

import random
import re
from pathlib import Path

from outagewatch.clock import FakeClock
from outagewatch.config import Config, parse_config
from outagewatch.demo import timeline
from outagewatch.demo.runner import DEMO_TOKEN, Timing, demo_config, seed_history
from outagewatch.demo.world import CHATGPT_APP_ID, CLAUDE_APP_ID, DEMO_API_KEY, World
from outagewatch.detect.disruption import DisruptionStatus, Transition
from outagewatch.failure_text import failure_text
from outagewatch.history import REPORT_BUCKET
from outagewatch.lenses.appstore import AppStoreLens, ChartSnapshot
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.registry import build_sources
from outagewatch.observations import ProbeResult, Report
from outagewatch.pipeline import Pipeline
from outagewatch.sources.base import RunContext, run_source
from outagewatch.store import Store
from outagewatch.views import (
    RECENT_EVENTS,
    ChartsView,
    DetectorsView,
    DisruptionView,
    ServiceStatus,
    StatusQuery,
    summary,
)
from outagewatch.web.status import render_status_page
from tests.conftest import Serve

HOUR = 3600.0
# Nine services, as in the issue; display names sort differently from the keys.
NAMES = {
    "claude": "Claude",
    "chatgpt": "ChatGPT",
    "gemini": "Gemini",
    "grok": "Grok",
    "mistral": "Le Chat",
    "copilot": "Copilot",
    "perplexity": "Perplexity",
    "deepseek": "DeepSeek",
    "meta": "Meta AI",
}


def _config(names: dict[str, str] = NAMES) -> Config:
    return parse_config(
        {
            "services": {
                key: {
                    "display_name": title,
                    "probes": {"web": {"kind": "http", "url": "http://127.0.0.1:1/"}},
                }
                for key, title in names.items()
            }
        }
    )


def _judged(states: dict[str, tuple[str, set[str]]]) -> tuple[Pipeline, Config, FakeClock]:
    """A pipeline watching every service, with these (state, reasons) as the tracker's."""
    clock = FakeClock()
    config = _config()
    pipeline = Pipeline(clock)
    pipeline.configure_detection(config, set())
    clock.advance(600)
    for service, (state, reasons) in states.items():
        pipeline.state.disruption.status[service] = DisruptionStatus(
            state, clock.time() - 300, frozenset(reasons)
        )
    return pipeline, config, clock


NIGHT = {
    "claude": ("disrupted", {"probes_failing"}),
    "chatgpt": ("ok", set()),
    "gemini": ("disrupted", {"official_major", "probes_failing"}),
    "grok": ("unknown", {"vantage_unhealthy"}),
    "mistral": ("ok", set()),
    "copilot": ("ok", set()),
    "perplexity": ("degraded", {"report_spike"}),
    "deepseek": ("ok", set()),
    "meta": ("ok", set()),
}


def _card_order(page: str) -> list[str]:
    return re.findall(r'<section class="card [a-z]+" id="service-([a-z]+)"', page)


def test_summary_counts_states_worst_first_and_names_why_unknown() -> None:
    pipeline, config, clock = _judged(NIGHT)
    typed = StatusQuery(pipeline.state).document(config, clock.time())
    document = typed.json()
    line = document["summary"]
    assert line["text"] == (
        "2 of 9 disrupted · 1 degraded · 1 unknown: vantage unhealthy (Grok) · 5 OK"
    )
    assert line["states"] == {"disrupted": 2, "degraded": 1, "unknown": 1, "ok": 5}
    assert line["worst"] == "disrupted"
    assert line["unknown_reasons"] == [
        {
            "reason": "vantage_unhealthy",
            "text": "vantage unhealthy",
            "services": ["grok"],
            "titles": ["Grok"],
        }
    ]
    page = render_status_page(typed, clock.time(), 30)
    # The summary leads the page, before any card, in the colour of the worst state.
    lead = re.search(r'<p class="summary disrupted" id=summary role=status>(.*?)</p>', page)
    assert lead is not None and page.index("id=summary") < page.index('class="card ')
    assert re.sub("<[^>]+>", "", lead.group(1)) == (
        "✕ 2 of 9 disrupted · ! 1 degraded · ? 1 unknown: vantage unhealthy (Grok) · ✓ 5 OK"
    )
    # Worst first, then by title: ChatGPT, Copilot, DeepSeek, Le Chat, Meta AI.
    assert _card_order(page) == [
        "claude",
        "gemini",
        "perplexity",
        "grok",
        "chatgpt",
        "copilot",
        "deepseek",
        "mistral",
        "meta",
    ]
    # The JSON keeps the configured order: the order is the page's.
    assert [s["service"] for s in document["services"]] == list(NAMES)


def _services(states: list[tuple[str, str, list[str]]]) -> list[ServiceStatus]:
    """Services judged so, with nothing else to show: what the summary reads."""
    return [
        ServiceStatus(
            key,
            key.title(),
            DisruptionView(state, None, tuple(why), tuple(why), None),
            DetectorsView((), ()),
            (),
            ChartsView(0.0, (), {}, (), None, (), {}),
            (),
        )
        for key, state, why in states
    ]


def test_summary_groups_unknown_reasons_and_counts_big_groups() -> None:
    many = [(f"s{i}", "unknown", ["vantage_unhealthy"]) for i in range(5)]
    line = summary(
        _services(
            [
                *many,
                ("x", "unknown", ["official_fetch_failing", "rank_surge"]),
                ("y", "unknown", []),
                ("z", "ok", []),
            ]
        )
    )
    assert line.text == (
        "7 of 8 unknown: vantage unhealthy (5 services); official page fetch failing (X); "
        "no reason given (Y) · 1 OK"
    )
    # A reason the page has no words for yet still reads as words.
    line = summary(_services([("a", "unknown", ["official_fetch_failing_since_0302"])]))
    assert line.text == "1 of 1 unknown: official fetch failing since 0302 (A)"
    assert summary(_services([("a", "ok", []), ("b", "ok", [])])).text == "All 2 OK"
    assert summary([]).text == "No services configured."
    assert summary([]).worst is None


def test_probe_failures_read_as_words() -> None:
    assert failure_text("http_status", None, 503) == "HTTP 503"
    assert failure_text("http_status", None, None) == "unexpected HTTP status"
    assert failure_text("tls", "expired", None) == "TLS certificate expired"
    assert failure_text("connect", "refused", None) == "connection refused"
    assert failure_text("dns", "nxdomain", None) == "DNS: no such host"
    assert failure_text("overloaded", None, 529) == "overloaded, HTTP 529"
    assert failure_text("body", None, 200) == "answer broke off, HTTP 200"
    assert failure_text("tls", "something_new", None) == "TLS failed (something new)"
    assert failure_text("brand_new", None, None) == "brand new"
    assert failure_text(None, None, None) == "unknown"

    clock = FakeClock()
    config = _config({"claude": "Claude"})
    pipeline = Pipeline(clock)
    pipeline.ingest(
        [
            ProbeResult(
                "claude",
                "web",
                "http",
                clock.time(),
                False,
                0.2,
                reason="http_status",
                status_code=503,
                detail="HTTP 503",
            )
        ]
    )
    page = render_status_page(StatusQuery(pipeline.state).document(config, clock.time()), 0.0, 30)
    assert "✕ down: HTTP 503</td>" in page
    assert "http_status" not in page


def test_state_changes_stay_on_the_page_under_probe_noise() -> None:
    clock = FakeClock()
    config = _config({"claude": "Claude"})
    pipeline = Pipeline(clock)
    pipeline.configure_detection(config, set())
    tracker = pipeline.state.disruption
    tracker.history["claude"].append(
        Transition("claude", clock.time(), "ok", "disrupted", ("probes_failing",))
    )
    # A flapping probe: far more up/down events than the page shows.
    for run in range(3 * RECENT_EVENTS):
        clock.advance(30)
        pipeline.ingest(
            [
                ProbeResult(
                    "claude",
                    "web",
                    "http",
                    clock.time(),
                    run % 2 == 0,
                    0.1,
                    reason=None if run % 2 == 0 else "timeout",
                )
            ]
        )
    typed = StatusQuery(pipeline.state).document(config, clock.time())
    document = typed.json()
    kinds = [e["kind"] for e in document["events"]]
    assert kinds.count("state") == 1
    assert len([k for k in kinds if k.startswith("probe_")]) == RECENT_EVENTS
    assert kinds[-1] == "state"  # the oldest, yet kept
    page = render_status_page(typed, clock.time(), 30)
    changes = page[page.index('class="state-changes"') : page.index('id="h-probe-events"')]
    assert "claude</strong>: now disrupted (was ok): most probes failing" in changes
    assert "probe web" not in changes
    noise = page[page.index('class="probe-events"') :]
    assert noise.count("<li>") == RECENT_EVENTS and "now disrupted" not in noise
    assert "claude</strong>: probe web failed: timed out</li>" in noise


def test_no_ratio_is_printed_against_a_usual_below_the_floor() -> None:
    clock = FakeClock()
    config = _config({"claude": "Claude"})
    pipeline = Pipeline(clock)
    pipeline.configure_reports(config)
    counts = pipeline.reports.counts("claude")
    for _ in range(3):
        counts.add(clock.time())
    typed = StatusQuery(pipeline.state).document(config, clock.time())
    document = typed.json()
    reports = document["services"][0]["reports"]
    assert (reports["baseline_per_5m"], reports["floor_per_5m"]) == (0.0, 1.0)
    page = render_status_page(typed, clock.time(), 30)
    assert "Reports in the last 5 minutes: <strong>3</strong> (usual: under 1)." in page
    assert "times that" not in page

    # With a usual level of 4 per 5 minutes (48 an hour for the last day), the ratio reads.
    hour = int(clock.time() // HOUR)
    for back in range(1, 25):
        counts.hourly[hour - back] = 48
    pipeline.reports.history_start = clock.time() - 25 * HOUR
    for _ in range(9):
        counts.add(clock.time())
    page = render_status_page(StatusQuery(pipeline.state).document(config, clock.time()), 0.0, 30)
    assert "<strong>12</strong> (usual: 4.0, 3.0 times that)." in page


async def test_reports_chart_draws_imported_history_not_zeros_before_the_start(
    tmp_path: Path,
) -> None:
    clock = FakeClock(1_800_000_000.0 - 1_800_000_000.0 % HOUR)  # on the hour
    config = _config({"claude": "Claude"})
    store = Store(tmp_path / "state.db", clock)
    store.open()
    try:
        # Imported: 36 reports an hour (3 per 5 minutes) for the 3 hours before the start,
        # and 6 in the first 30 minutes of the start hour.
        imported = [
            Report("claude", "app", clock.time() - 3 * HOUR + i * 100, channel="import")
            for i in range(3 * 36)
        ]
        imported += [
            Report("claude", "app", clock.time() + i * 300, channel="import") for i in range(6)
        ]
        assert await store.import_reports(imported) == len(imported)
        clock.advance(1800)  # the daemon starts at half past
        pipeline = Pipeline(clock)
        await pipeline.start_reports(store, config)
        pipeline.configure_detection(config, set())
        started = clock.time()
        for _ in range(20):  # live: 2 reports a minute for 20 minutes
            await pipeline.submit_reports([Report("claude", "app", clock.time())] * 2, 0.0)
            clock.advance(60)
        typed = StatusQuery(pipeline.state).document(config, clock.time())
    finally:
        store.close()
    chart = typed.json()["services"][0]["charts"]
    points = {t: count for t, count in chart["reports_per_5m"]}
    first_imported = started - 1800 - 3 * HOUR
    # Nothing drawn before the stored history begins; no zeros claiming a quiet night.
    assert min(points) == first_imported
    assert all(count == 3.0 for t, count in points.items() if t < started - 1800)
    # The start hour before the start: its 6 stored reports over its 6 buckets.
    assert [points[started - 1800 + i * REPORT_BUCKET] for i in range(6)] == [1.0] * 6
    # From the start on: what was counted live.
    assert [points[started + i * REPORT_BUCKET] for i in range(4)] == [10.0] * 4
    assert [t for t, _ in chart["baseline_per_5m"]] == sorted(points)
    assert chart["reports_counted_from"] is not None
    page = render_status_page(typed, clock.time(), 30)
    assert "(before outagewatch started), hourly averages of the stored reports." in page


async def test_reports_chart_starts_at_the_start_without_history() -> None:
    clock = FakeClock()
    config = _config({"claude": "Claude"})
    pipeline = Pipeline(clock)
    pipeline.configure_reports(config)
    pipeline.reports.history_start = clock.time()  # a new store: nothing before now
    pipeline.configure_detection(config, set())
    started = clock.time()
    clock.advance(900)
    chart = (
        StatusQuery(pipeline.state).document(config, clock.time()).json()["services"][0]["charts"]
    )
    assert chart["reports_per_5m"]
    assert min(t for t, _ in chart["reports_per_5m"]) == started - started % REPORT_BUCKET


async def test_demo_chart_keeps_both_apps_while_claude_takes_first_place(
    serve: Serve, run_context: RunContext, tmp_path: Path
) -> None:
    """The rank line fell to 101 for a sample: both apps were placed at #1, one dropped."""
    start = 1_800_000_000.0
    minute = 86.0  # Claude's climb reaches #1 here, while ChatGPT held #1
    world = World(lambda: minute, lambda: start + minute * 60, random.Random(1), 0.01)
    world.start = start
    url = await serve(world.app())
    (tmp_path / "api-key").write_text(DEMO_API_KEY + "\n")
    (tmp_path / "report-tokens").write_text(DEMO_TOKEN + "\n")
    config = parse_config(demo_config(tmp_path, url, Timing(4)))
    (source,) = [s for s in build_sources(config, ChatBudget()) if s.key == "appstore/us/top-free"]
    pipeline = Pipeline(FakeClock(start))
    for minute in (84.0, 85.5, 86.0, 87.9, 88.5):
        (snapshot,) = await run_source(source, run_context)
        assert isinstance(snapshot, ChartSnapshot)
        assert CLAUDE_APP_ID in snapshot.ranks and CHATGPT_APP_ID in snapshot.ranks, minute
        pipeline.ingest([snapshot])
    ranks = pipeline.state.lenses.of(AppStoreLens)
    rank_line = ranks.history.points(("claude", "us", "top-free"))
    assert [p.position for p in rank_line] == [2, 1, 1, 1, 1]
    chatgpt_line = ranks.history.points(("chatgpt", "us", "top-free"))
    assert [p.position for p in chatgpt_line] == [1, 2, 2, 2, 2]
    # Never two apps on one place, anywhere in the story.
    for country in timeline.COUNTRIES:
        for tenth in range(int(timeline.DEMO_MINUTES * 10) + 1):
            claude = timeline.chart_rank("claude", country, tenth / 10)
            assert claude != timeline.chart_rank("chatgpt", country, tenth / 10), (country, tenth)


def test_demo_seed_reaches_up_to_the_start() -> None:
    """The seeded history stopped at the last whole hour: half an hour of zeros before the start."""
    start = 1_800_000_000.0 + 1800.0  # half past
    seeded = seed_history(random.Random(7), start)
    assert start - 600 < max(r.time for r in seeded) < start
