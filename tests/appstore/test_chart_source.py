"""The chart feed source against a local feed server, through the real
scheduler run and pipeline, with metrics read from a fresh registry."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from outagewatch.clock import FakeClock
from outagewatch.config import parse_config
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.appstore.source import ChartFeedSource, build_chart_sources
from outagewatch.pipeline import Pipeline
from outagewatch.scheduler import Scheduler
from outagewatch.sources.base import RunContext, run_source
from outagewatch.sources.client import USER_AGENT
from outagewatch.sources.errors import SourceError
from tests.appstore.conftest import FeedServer, Reply
from tests.appstore.payloads import (
    CHATBOTS,
    EXPECTED_RANKS,
    HTML_PAGE,
    chart_with_chatbots,
    filler,
    legacy_json,
    legacy_xml,
    v2_json,
)
from tests.scrape import Scrape, scrape

V2_US = "/v2/us/apps/top-free/100/apps.json"
LEGACY_US = "/us/rss/topgrossingapplications/limit=100/json"
INTERVAL = 900.0


def make_sources(server: FeedServer, **appstore: Any) -> dict[str, ChartFeedSource]:
    services = {key: {"appstore": {"app_id": app_id}} for key, (app_id, _) in CHATBOTS.items()}
    section = {
        "countries": ["us"],
        "charts": [{"chart": "top-free"}],
        "v2_base_url": f"{server.base_url}/v2",
        "legacy_base_url": server.base_url,
        **appstore,
    }
    config = parse_config({"services": services, "appstore": section})
    return {s.key: s for s in build_chart_sources(config, random.Random(4))}


class Harness:
    """The real scheduler run and pipeline around sources, and a registry to read."""

    def __init__(self, ctx: RunContext, clock: FakeClock) -> None:
        self.pipeline = Pipeline(clock)
        self.scheduler = Scheduler(self.pipeline, lambda _s: ctx, clock, 8, 0.0)
        self.registry = Scrape(b"")

    async def run(self, source: ChartFeedSource) -> None:
        await self.scheduler.run_once(source)
        self.registry = await scrape(self.pipeline.state)

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def rank(self, service: str, country: str = "us", chart: str = "top-free") -> float | None:
        return self.value(
            "outagewatch_appstore_rank", service=service, country=country, chart=chart
        )

    def failures(self, reason: str, country: str = "us", chart: str = "top-free") -> float | None:
        return self.value(
            "outagewatch_appstore_feed_failures_total", country=country, chart=chart, reason=reason
        )


@pytest.fixture
def harness(run_context: RunContext, clock: FakeClock) -> Harness:
    return Harness(run_context, clock)


async def test_one_request_per_feed_url_for_every_service(
    feed_server: FeedServer, harness: Harness
) -> None:
    feed_server.serve(V2_US, Reply(v2_json(chart_with_chatbots())))
    feed_server.serve("/v2/gb/apps/top-free/100/apps.json", Reply(v2_json(filler(100), "gb")))
    feed_server.serve(LEGACY_US, Reply(legacy_json(chart_with_chatbots())))
    feed_server.serve(
        "/gb/rss/topgrossingapplications/limit=100/json", Reply(legacy_json(filler(100)))
    )
    sources = make_sources(
        feed_server,
        countries=["us", "gb"],
        charts=[{"chart": "top-free"}, {"chart": "top-grossing", "feed": "legacy-json"}],
    )
    for source in sources.values():
        await harness.run(source)

    assert sorted(feed_server.paths()) == sorted(
        [
            V2_US,
            LEGACY_US,
            "/v2/gb/apps/top-free/100/apps.json",
            "/gb/rss/topgrossingapplications/limit=100/json",
        ]
    )
    for request in feed_server.requests:
        assert request.headers["User-Agent"] == USER_AGENT
        assert "If-None-Match" not in request.headers  # nothing to be conditional on yet
    for service, rank in EXPECTED_RANKS.items():
        assert harness.rank(service) == rank
        assert harness.rank(service, chart="top-grossing") == rank
        assert harness.rank(service, country="gb") is None
        assert harness.value("outagewatch_appstore_best_rank", service=service, chart="top-free")
    # Out of the top 100 is explicit: in_chart 0 and the depth, never a missing series.
    labels = {"service": "copilot", "country": "us", "chart": "top-free"}
    assert harness.value("outagewatch_appstore_in_chart", **labels) == 0
    assert harness.value("outagewatch_appstore_in_chart", **{**labels, "service": "claude"}) == 1
    assert harness.value("outagewatch_appstore_chart_depth", country="us", chart="top-free") == 100
    assert harness.value("outagewatch_appstore_best_rank", service="copilot", chart="top-free") is (
        None
    )


async def test_conditional_requests_and_304_keep_the_last_ranks(
    feed_server: FeedServer, harness: Harness, clock: FakeClock
) -> None:
    modified = "Tue, 22 Apr 2014 20:42:12 GMT"
    feed_server.serve(
        V2_US, Reply(v2_json(chart_with_chatbots()), etag='"chart-1"', last_modified=modified)
    )
    source = make_sources(feed_server)["appstore/us/top-free"]
    await harness.run(source)
    first_success = clock.time()
    clock.advance(INTERVAL)
    await harness.run(source)

    second = feed_server.requests[1].headers
    assert second["If-None-Match"] == '"chart-1"'
    assert second["If-Modified-Since"] == modified
    assert harness.rank("claude") == EXPECTED_RANKS["claude"]
    assert (
        harness.value(
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            country="us",
            chart="top-free",
        )
        == first_success + INTERVAL
    )
    ranks = harness.pipeline.state.lenses.of(AppStoreLens)
    points = ranks.history.points(("claude", "us", "top-free"))
    assert [(p.time, p.rank) for p in points] == [(first_success, 12), (first_success + 900, 12)]
    assert harness.failures("invalid") is None


async def test_backoff_after_429_skips_runs_until_it_ends(
    feed_server: FeedServer, harness: Harness, clock: FakeClock
) -> None:
    feed_server.serve(
        V2_US,
        Reply(v2_json(chart_with_chatbots())),
        Reply(b"Too Many Requests", status=429, content_type="text/plain"),
        Reply(b"Too Many Requests", status=429, content_type="text/plain"),
        Reply(v2_json(chart_with_chatbots())),
    )
    source = make_sources(feed_server, max_backoff="2h")["appstore/us/top-free"]
    await harness.run(source)  # good
    clock.advance(INTERVAL)
    await harness.run(source)  # 429: a first failure waits one interval (the next run)
    clock.advance(INTERVAL)
    await harness.run(source)  # 429 again: waits 1..2 intervals, jittered: one run skipped
    assert harness.failures("throttled") == 2
    assert len(feed_server.requests) == 3

    clock.advance(INTERVAL)
    await harness.run(source)
    assert len(feed_server.requests) == 3  # skipped: no request while backing off
    assert harness.failures("backoff") == 1
    assert harness.rank("claude") == EXPECTED_RANKS["claude"]  # last good ranks stay

    clock.advance(INTERVAL)
    await harness.run(source)
    assert len(feed_server.requests) == 4
    assert (
        harness.value(
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            country="us",
            chart="top-free",
        )
        == clock.time()
    )


async def test_backoff_doubles_with_jitter_and_honours_retry_after(
    feed_server: FeedServer, run_context: RunContext, clock: FakeClock
) -> None:
    """The shared run back-off (sources/polling.py), one run per interval."""
    feed_server.serve(V2_US, Reply(b"busy", status=503, content_type="text/plain"))
    source = make_sources(feed_server, max_backoff="6h")["appstore/us/top-free"]
    request_runs = []
    for run in range(40):  # 40 runs cover five doublings
        try:
            await run_source(source, run_context)
        except SourceError as exc:
            if exc.reason != "backoff":
                assert exc.reason == "server_error"
                request_runs.append(run)
        if len(request_runs) == 6:
            break
        clock.advance(INTERVAL)
    gaps = [b - a for a, b in itertools.pairwise(request_runs)]
    # After failure n the wait lies in [interval x 2^(n-1) / 2, interval x 2^(n-1)],
    # counted in whole runs.
    assert len(gaps) == 5
    for n, gap in enumerate(gaps, start=1):
        whole = 2 ** (n - 1)
        assert max(1, whole // 2) <= gap <= whole
    assert gaps[-1] > 1  # it did double
    assert len(feed_server.requests) == 6

    feed_server.serve(
        V2_US,
        Reply(b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "7200"}),
    )
    fresh = make_sources(feed_server)["appstore/us/top-free"]
    with pytest.raises(SourceError):
        await run_source(fresh, run_context)
    for _ in range(7):  # Retry-After 2 h = 8 intervals: seven runs skipped
        with pytest.raises(SourceError) as caught:
            await run_source(fresh, run_context)
        assert caught.value.reason == "backoff"
    assert len(feed_server.requests) == 7


async def test_old_backoff_max_name_still_caps_the_backoff(
    feed_server: FeedServer, run_context: RunContext
) -> None:
    """`backoff_max` is the deprecated name of `max_backoff` (docs/appstore.md)."""
    feed_server.serve(
        V2_US,
        Reply(b"slow down", status=429, content_type="text/plain", headers={"Retry-After": "7200"}),
    )
    source = make_sources(feed_server, backoff_max="30m")["appstore/us/top-free"]
    assert source.config.max_backoff == 1800
    with pytest.raises(SourceError):
        await run_source(source, run_context)
    with pytest.raises(SourceError) as caught:  # capped at 2 intervals: one run skipped
        await run_source(source, run_context)
    assert caught.value.reason == "backoff"
    with pytest.raises(SourceError) as caught:
        await run_source(source, run_context)
    assert caught.value.reason == "throttled"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(HTML_PAGE, content_type="text/html"), "html"),
        (Reply(HTML_PAGE, content_type="application/json"), "html"),
        (Reply(v2_json(chart_with_chatbots())[:5000]), "truncated"),
        (Reply(b'{"feed": {"title": "Top Free Apps"}}'), "invalid"),
        (Reply(v2_json([])), "empty"),
        (Reply(b"gone", status=404, content_type="text/plain"), "http_status"),
        (Reply(b"no", status=403, content_type="text/plain"), "throttled"),
        (Reply(b"oops", status=500, content_type="text/plain"), "server_error"),
    ],
)
async def test_failed_fetch_keeps_last_good_ranks_marked_stale(
    feed_server: FeedServer, harness: Harness, clock: FakeClock, reply: Reply, reason: str
) -> None:
    feed_server.serve(V2_US, Reply(v2_json(chart_with_chatbots())), reply)
    source = make_sources(feed_server)["appstore/us/top-free"]
    await harness.run(source)
    good_time = clock.time()
    clock.advance(INTERVAL)
    await harness.run(source)

    assert harness.failures(reason) == 1
    assert (
        harness.value(
            "outagewatch_source_failures_total", source=source.key, kind="appstore", reason=reason
        )
        == 1
    )
    # The ranks are those of the last good read, and its time says how old they are.
    for service, rank in EXPECTED_RANKS.items():
        assert harness.rank(service) == rank
    assert (
        harness.value(
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            country="us",
            chart="top-free",
        )
        == good_time
    )
    ranks = harness.pipeline.state.lenses.of(AppStoreLens)
    points = ranks.history.points(("claude", "us", "top-free"))
    assert len(points) == 1  # a failure adds nothing to the history


async def test_throttled_legacy_feed_backs_off_and_keeps_ranks(
    feed_server: FeedServer, harness: Harness, clock: FakeClock
) -> None:
    feed_server.serve(
        LEGACY_US,
        Reply(legacy_json(chart_with_chatbots())),
        Reply(legacy_json(None)),
        Reply(legacy_json(None)),
    )
    sources = make_sources(feed_server, charts=[{"chart": "top-grossing", "feed": "legacy-json"}])
    source = sources["appstore/us/top-grossing"]
    for _ in range(4):  # good, throttled, throttled again, skipped
        await harness.run(source)
        clock.advance(INTERVAL)
    assert harness.failures("throttled", chart="top-grossing") == 2
    assert harness.failures("backoff", chart="top-grossing") == 1
    assert len(feed_server.requests) == 3
    assert harness.rank("gemini", chart="top-grossing") == EXPECTED_RANKS["gemini"]


async def test_first_read_of_an_empty_chart_is_a_chart_of_depth_zero(
    feed_server: FeedServer, harness: Harness
) -> None:
    feed_server.serve(V2_US, Reply(v2_json([])))
    await harness.run(make_sources(feed_server)["appstore/us/top-free"])
    assert harness.value("outagewatch_appstore_chart_depth", country="us", chart="top-free") == 0
    labels = {"service": "claude", "country": "us", "chart": "top-free"}
    assert harness.value("outagewatch_appstore_in_chart", **labels) == 0


async def test_validators_of_a_bad_answer_are_not_reused(
    feed_server: FeedServer, harness: Harness, clock: FakeClock
) -> None:
    feed_server.serve(
        V2_US,
        Reply(v2_json(chart_with_chatbots()), etag='"good"'),
        Reply(HTML_PAGE, content_type="text/html", etag='"bad"'),
        Reply(v2_json(chart_with_chatbots()), etag='"good-2"'),
    )
    source = make_sources(feed_server)["appstore/us/top-free"]
    for _ in range(3):
        await harness.run(source)
        clock.advance(INTERVAL)
    assert [r.headers.get("If-None-Match") for r in feed_server.requests] == [
        None,
        '"good"',
        '"good"',
    ]


async def test_renamed_app_keeps_its_rank_series(
    feed_server: FeedServer, harness: Harness, clock: FakeClock
) -> None:
    before = filler(100)
    before[19] = ("6740410176", "Le Chat by Mistral AI")
    after = filler(100)
    after[2] = ("6740410176", "Vibe by Mistral (ex-Le Chat)")
    feed_server.serve(
        LEGACY_US.replace("json", "xml"), Reply(legacy_xml(before)), Reply(legacy_xml(after))
    )
    source = make_sources(feed_server, charts=[{"chart": "top-grossing", "feed": "legacy-xml"}])[
        "appstore/us/top-grossing"
    ]
    await harness.run(source)
    clock.advance(INTERVAL)
    await harness.run(source)
    ranks = harness.pipeline.state.lenses.of(AppStoreLens)
    points = ranks.history.points(("le-chat", "us", "top-grossing"))
    assert [p.rank for p in points] == [20, 3]
    assert harness.rank("le-chat", chart="top-grossing") == 3


async def test_oversized_body_is_too_large(feed_server: FeedServer, harness: Harness) -> None:
    feed_server.serve(V2_US, Reply(v2_json(chart_with_chatbots())))
    source = make_sources(feed_server, max_body_bytes=1000)["appstore/us/top-free"]
    await harness.run(source)
    assert harness.failures("too_large") == 1


async def test_unreachable_feed_is_a_connect_failure(harness: Harness) -> None:
    server = FeedServer()
    server.base_url = "http://127.0.0.1:1"
    await harness.run(make_sources(server)["appstore/us/top-free"])
    assert harness.failures("connect") == 1


async def test_slow_feed_is_a_timeout_and_keeps_the_last_ranks(
    feed_server: FeedServer, harness: Harness
) -> None:
    chart = v2_json(chart_with_chatbots())
    feed_server.serve(V2_US, Reply(chart), Reply(chart, delay=0.6))
    source = make_sources(feed_server, timeout="200ms")["appstore/us/top-free"]
    await harness.run(source)
    await harness.run(source)
    assert harness.failures("timeout") == 1
    assert harness.rank("claude") == EXPECTED_RANKS["claude"]
