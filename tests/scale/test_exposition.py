"""The cached /metrics page says exactly what prometheus_client would, only faster."""

from __future__ import annotations

import subprocess

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from outagewatch.clock import FakeClock
from outagewatch.exposition import GlobalStateCollector, MetricsPage
from outagewatch.lenses.probe import ProbeLens
from outagewatch.metrics import StateCollector
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
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


def reference(pipeline: Pipeline) -> bytes:
    registry = CollectorRegistry()
    registry.register(StateCollector(pipeline.state, "1", "r", "3.11"))
    return generate_latest(registry)


def meaning(text: bytes) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, float]]]:
    """Families (name, type, help) and samples (name, labels, value), label order aside."""
    families, samples = set(), set()
    for fam in text_string_to_metric_families(text.decode()):
        families.add((fam.name, fam.type, fam.documentation))
        for s in fam.samples:
            samples.add((s.name, repr(sorted(s.labels.items())), s.value))
    return families, samples


async def page_of(pipeline: Pipeline) -> MetricsPage:
    registry = CollectorRegistry()
    registry.register(GlobalStateCollector(pipeline.state, "1", "r", "3.11"))
    return MetricsPage(pipeline.state, registry)


async def test_the_page_has_the_same_lines_as_generate_latest() -> None:
    pipeline = busy_pipeline()
    page = await page_of(pipeline)
    text, expected = await page.render(), reference(pipeline)
    assert meaning(text) == meaning(expected)
    assert (
        b'outagewatch_probe_failures_total{probe="web",reason="tls",service="claude",'
        b'sub_reason="expired"} 1.0\n' in text
    )
    # Line for line too (labels in name order, values formatted alike), order apart.
    assert sorted(text.splitlines()) == sorted(expected.splitlines())


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
    assert sorted(second.splitlines()) == sorted(reference(pipeline).splitlines())


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
    page = await page_of(busy_pipeline())
    text = await page.render()
    checked = subprocess.run(  # noqa: ASYNC221 (a short check after the loop's work is done)
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
