"""The cached /metrics page: what the state holds, read back by prometheus_client's parser."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from outagewatch.catalogue import PROBE_DETAIL_FAMILIES, PROBE_FAMILIES, RUN_FAMILIES
from outagewatch.clock import FakeClock
from outagewatch.exposition import MetricsPage
from outagewatch.lenses.probe import ProbeLens
from outagewatch.metrics import StateCollector
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from tests.conftest import require_tool


def result(probe: str, success: bool | None, **extra: object) -> ProbeResult:
    return ProbeResult(
        service="claude",
        probe=probe,
        kind="http",
        time=1_700_000_123.25,
        success=success,
        duration_seconds=0.123,
        phases={"dns": 0.001, "connect": 0.002, "processing": 0.1},
        **extra,  # type: ignore[arg-type]
    )


def busy_pipeline() -> Pipeline:
    """Probes and runs in every shape the collector renders differently."""
    pipeline = Pipeline(FakeClock())
    pipeline.record_run("claude/api", "http", 0.2, [result("api", True, status_code=200)])
    pipeline.record_run(
        "claude/web",
        "http",
        0.3,
        [result("web", False, reason="http_status", status_code=503, tls_earliest_expiry=1.8e9)],
    )
    pipeline.record_run("claude/web", "http", 0.3, [result("web", None, reason="challenge")])
    pipeline.record_run(
        "claude/web",
        "http",
        0.3,
        [result("web", False, reason="tls", sub_reason="expired", detail="certificate expired")],
    )
    pipeline.record_run("claude/odd", "http", 2.0, error_reason="timeout")
    pipeline.record_run('claude/quote"d', "http", 0.1, [result('quote"d\\', True)])
    pipeline.record_lateness(0.002)
    return pipeline


def samples(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Every sample (name, labels, value) as prometheus_client's text parser reads it."""
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def expected_per_target(
    details: bool = False,
) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    """What busy_pipeline's probes and runs must read as, worked out from its inputs;
    the per-probe details only with metrics.probe_details."""
    quoted = 'quote"d\\'
    want: set[tuple[str, tuple[tuple[str, str], ...], float]] = set()

    def add(name: str, value: float, **labels: str) -> None:
        want.add((name, tuple(sorted(labels.items())), value))

    for probe in ("api", "web", quoted) if details else ():
        for phase, seconds in {"dns": 0.001, "connect": 0.002, "processing": 0.1}.items():
            add(
                "outagewatch_probe_duration_seconds",
                seconds,
                service="claude",
                probe=probe,
                phase=phase,
            )
        for phase in ("tls", "transfer"):
            add(
                "outagewatch_probe_duration_seconds",
                0.0,
                service="claude",
                probe=probe,
                phase=phase,
            )
        add("outagewatch_probe_last_duration_seconds", 0.123, service="claude", probe=probe)
    for probe, success, status, runs, inconclusive in (
        ("api", 1, 200, 1, 0),
        ("web", 0, 0, 3, 1),  # the last conclusive run failed; the last run had no status
        (quoted, 1, 0, 1, 0),
    ):
        add("outagewatch_probe_success", success, service="claude", probe=probe)
        add("outagewatch_probe_http_status_code", status, service="claude", probe=probe)
        add("outagewatch_probes_total", runs, service="claude", probe=probe)
        if inconclusive:  # absent until the first
            add("outagewatch_probe_inconclusive_total", inconclusive, service="claude", probe=probe)
    for probe in ("api", quoted) if details else ():
        add(
            "outagewatch_probe_last_success_timestamp_seconds",
            1_700_000_123.25,
            service="claude",
            probe=probe,
        )
    add("outagewatch_probe_failures_total", 2, service="claude", probe="web")
    for source, runs, duration in (
        ("claude/api", 1, 0.2),
        ("claude/web", 3, 0.3),
        ("claude/odd", 1, 2.0),
        ('claude/quote"d', 1, 0.1),
    ):
        add("outagewatch_source_runs_total", runs, kind="http", source=source)
        add("outagewatch_source_last_run_duration_seconds", duration, kind="http", source=source)
        if source != "claude/odd":
            # FakeClock's start: the time of each source's last good run.
            add(
                "outagewatch_source_last_success_timestamp_seconds",
                1_700_000_000.0,
                kind="http",
                source=source,
            )
    add("outagewatch_source_failures_total", 1, kind="http", source="claude/odd", reason="timeout")
    return want


def per_target(text: bytes) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    names = set(PROBE_FAMILIES) | set(PROBE_DETAIL_FAMILIES) | set(RUN_FAMILIES)
    return {s for s in samples(text) if s[0] in names or s[0].removesuffix("_total") in names}


async def page_of(pipeline: Pipeline, details: bool = False) -> MetricsPage:
    registry = CollectorRegistry()
    registry.register(StateCollector(StatusQuery(pipeline.state), "1", "r", "3.11"))
    return MetricsPage(StatusQuery(pipeline.state), registry, details)


async def test_the_page_says_what_the_state_holds_and_parses() -> None:
    pipeline = busy_pipeline()
    detailed = await (await page_of(pipeline, details=True)).render()
    assert per_target(detailed) == expected_per_target(details=True)
    page = await page_of(pipeline)
    text = await page.render()
    assert per_target(text) == expected_per_target()
    assert b'outagewatch_probe_failures_total{probe="web",service="claude"} 2.0\n' in text
    # The reasons are the service's (one family for every probe of it), from the registry.
    reasons = {
        (dict(labels)["reason"], dict(labels)["sub_reason"], value)
        for name, labels, value in samples(text)
        if name == "outagewatch_probe_failure_reasons_total" and dict(labels)["service"] == "claude"
    }
    assert reasons == {("http_status", "", 1.0), ("tls", "expired", 1.0)}
    # The registry's families come along, and each family has one header.
    assert (
        "outagewatch_build_info",
        (("python_version", "3.11"), ("revision", "r"), ("version", "1")),
        1.0,
    ) in samples(text)
    headers = [line for line in text.splitlines() if line.startswith(b"# TYPE ")]
    assert len(headers) == len(set(headers))
    openmetrics = await page.render(openmetrics=True)
    assert openmetrics.endswith(b"# EOF\n")
    assert b"# TYPE outagewatch_probes counter\n" in openmetrics


async def test_a_new_run_replaces_the_cached_lines_and_a_removed_probe_leaves() -> None:
    pipeline = busy_pipeline()
    page = await page_of(pipeline)
    first = await page.render()
    assert b'outagewatch_probes_total{probe="api",service="claude"} 1.0' in first
    pipeline.record_run("claude/api", "http", 0.2, [result("api", False, reason="connect")])
    pipeline.retain({"claude/api"}, {("claude", "api")})
    second = await page.render()
    assert b'outagewatch_probes_total{probe="api",service="claude"} 2.0' in second
    assert b'outagewatch_probe_success{probe="api",service="claude"} 0.0' in second
    assert b'probe="web"' not in second and b'source="claude/web"' not in second
    # What a fresh page (no cache) renders for the same state.
    assert sorted(second.splitlines()) == sorted(
        (await (await page_of(pipeline)).render()).splitlines()
    )


async def test_unchanged_targets_are_not_rendered_again() -> None:
    pipeline = busy_pipeline()
    page = await page_of(pipeline)
    before = await page.render()
    pipeline.state.lenses.of(ProbeLens).probes[
        "claude", "web"
    ].last = None  # unseen: no run counted it
    assert await page.render() == before


async def test_the_page_passes_promtool_check_metrics() -> None:
    promtool = require_tool("promtool")
    for details in (False, True):  # metrics.probe_details
        page = await page_of(busy_pipeline(), details)
        text = await page.render()
        checked = subprocess.run(  # noqa: ASYNC221 (a short check after the loop's work is done)
            [promtool, "check", "metrics"],
            input=text,
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, (details, checked.stdout + checked.stderr)
