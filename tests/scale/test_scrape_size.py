"""/metrics bytes per target (issue 20): computed from a real render, not timed.

The goal is at most 0.5 MB per 1,000 targets uncompressed. Every probe here has
run three times over HTTPS (so it has the TLS expiry series), one in 17 has
failed once, and the names are longer than most configs' (``service-07``,
``endpoint-01234``): a regression that adds a per-target series fails here. The
worst case, every probe having failed with each of the 7 HTTP reasons, holds the
same budget: the reasons are counted per service, not per probe.
"""

from __future__ import annotations

import signal
from pathlib import Path

from prometheus_client import CollectorRegistry

from outagewatch.catalogue import PROBE_DETAIL_FAMILIES, PROBE_FAMILIES, RUN_FAMILIES
from outagewatch.clock import FakeClock
from outagewatch.config_types import MetricsConfig
from outagewatch.exposition import MetricsPage
from outagewatch.keys import probe_source_key
from outagewatch.metrics import StateCollector
from outagewatch.observations import HTTP_FAILURE_REASONS, PHASES, SUB_REASONS, ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import StatusQuery
from tests.daemon_process import DaemonProcess
from tests.scale.test_exposition import samples

BUDGET_BYTES_PER_TARGET = 500  # 0.5 MB per 1,000 targets
SERVICES = 50
# The worst case: every probe has failed once with each of these, then succeeded.
WORST_REASONS = HTTP_FAILURE_REASONS[:7]
WORST_SERVICES = 20
PHASE_TIMES = {"dns": 0.00123, "connect": 0.00234, "tls": 0.0123, "processing": 0.0345}


def probes(targets: int, rounds: int = 3) -> Pipeline:
    """``targets`` HTTPS probes over ``SERVICES`` services, each run ``rounds`` times."""
    pipeline = Pipeline(FakeClock())
    for i in range(targets):
        service, probe = f"service-{i % SERVICES:02d}", f"endpoint-{i:05d}"
        for round_ in range(rounds):
            failed = (i + round_) % 17 == 0
            result = ProbeResult(
                service=service,
                probe=probe,
                kind="http",
                time=1_796_535_422.488 + 30 * round_,
                success=not failed,
                duration_seconds=0.0612345,
                reason="connect" if failed else None,
                status_code=None if failed else 200,
                phases=PHASE_TIMES,
                tls_earliest_expiry=1_799_127_422.0,
            )
            pipeline.record_run(probe_source_key(service, probe), "http", 0.0612345, [result])
    return pipeline


def failed_every_way(targets: int) -> Pipeline:
    """``targets`` HTTPS probes over ``WORST_SERVICES`` services, each failed once with
    each of the 7 HTTP reasons (a sub-reason where the reason has them, spread so each
    service has them all), then up again.

    Names as long as the shipped config's and more (``chatbot-07``/``api-00123``
    against ``claude``/``api``); with the 14-character probe names above it is 505
    bytes (docs/benchmarks.md).
    """
    pipeline = Pipeline(FakeClock())
    for i in range(targets):
        service, probe = f"chatbot-{i % WORST_SERVICES:02d}", f"api-{i:05d}"
        runs: list[tuple[str | None, str | None]] = [
            (reason, SUB_REASONS[reason][i // WORST_SERVICES % len(SUB_REASONS[reason])])
            if reason in SUB_REASONS
            else (reason, None)
            for reason in WORST_REASONS
        ]
        for round_, (reason, sub_reason) in enumerate([*runs, (None, None)]):
            result = ProbeResult(
                service=service,
                probe=probe,
                kind="http",
                time=1_796_535_422.488 + 30 * round_,
                success=reason is None,
                duration_seconds=0.0612345,
                reason=reason,
                sub_reason=sub_reason,
                status_code=200 if reason is None else None,
                phases=PHASE_TIMES,
                tls_earliest_expiry=1_799_127_422.0,
            )
            # A timed-out HTTP probe answers its result (answer_on_timeout): no source failure.
            pipeline.record_run(probe_source_key(service, probe), "http", 0.0612345, [result])
    return pipeline


def page_of(pipeline: Pipeline, details: bool = False) -> MetricsPage:
    registry = CollectorRegistry()
    registry.register(StateCollector(StatusQuery(pipeline.state), "1", "r", "3.11"))
    return MetricsPage(StatusQuery(pipeline.state), registry, details)


async def bytes_per_target(targets: int, details: bool = False) -> float:
    """The page's growth per target: a page of ``targets`` less an empty daemon's."""
    empty = await page_of(Pipeline(FakeClock()), details).render()
    full = await page_of(probes(targets), details).render()
    return (len(full) - len(empty)) / targets


async def test_a_thousand_targets_render_within_half_a_megabyte() -> None:
    per_target = await bytes_per_target(1000)
    assert per_target <= BUDGET_BYTES_PER_TARGET, f"{per_target:.0f} bytes per target"
    # OpenMetrics adds only headers and # EOF: the same budget.
    page = page_of(probes(1000))
    assert len(await page.render(openmetrics=True)) <= 1000 * BUDGET_BYTES_PER_TARGET + 20_000


async def test_the_worst_case_every_reason_on_every_probe_renders_within_budget() -> None:
    """1,000 probes over 20 services, each failed with all 7 HTTP reasons: a probe's
    failures are one line, the reasons one line per service and reason."""
    targets = 1000
    empty = await page_of(Pipeline(FakeClock())).render()
    text = await page_of(failed_every_way(targets)).render()
    per_target = (len(text) - len(empty)) / targets
    assert per_target <= BUDGET_BYTES_PER_TARGET, f"{per_target:.0f} bytes per target"
    lines = text.decode().splitlines()
    failures = [line for line in lines if line.startswith("outagewatch_probe_failures_total{")]
    assert len(failures) == targets and all(line.endswith(" 7.0") for line in failures)
    reasons = [line for line in lines if line.startswith("outagewatch_probe_failure_reasons_total")]
    # Per service: each reason, with each sub-reason where it has them.
    per_service = sum(len(SUB_REASONS.get(reason, ("",))) for reason in WORST_REASONS)
    assert len(reasons) == WORST_SERVICES * per_service
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in reasons)
    assert counted == targets * len(WORST_REASONS)


async def test_per_probe_details_are_off_by_default_and_cost_what_the_docs_say() -> None:
    text = (await page_of(probes(10)).render()).decode()
    for family in PROBE_DETAIL_FAMILIES:
        assert f"\n{family}{{" not in text, family
    assert 'source="service-01/probe/endpoint-00001"' not in text  # no runs nor times
    # The per-service phase totals replace the per-probe phase gauges: 3 runs x 10/50 probes.
    for phase in PHASES:
        seconds = 3 * PHASE_TIMES.get(phase, 0.0)
        assert any(
            line.startswith(
                f'outagewatch_probe_phase_seconds_total{{kind="http",phase="{phase}",'
                'service="service-01"} '
            )
            and abs(float(line.split()[-1]) - seconds) < 1e-9
            for line in text.splitlines()
        ), phase
    # docs/configuration.md: "about 0.5 kB more per probe" with the details.
    extra = await bytes_per_target(200, details=True) - await bytes_per_target(200)
    assert 400 <= extra <= 1100, extra


async def test_the_details_add_their_families_and_take_nothing_away() -> None:
    pipeline = probes(40)
    source = probe_source_key("service-03", "endpoint-00003")
    pipeline.record_run(source, "http", 2.0, error_reason="timeout")  # the framework's failure
    brief = samples(await page_of(pipeline).render())
    detailed = samples(await page_of(pipeline, details=True).render())
    assert brief < detailed
    added = {name for name, _, _ in detailed - brief}
    probe_sources = {"outagewatch_source_runs_total"} | {
        name for name in RUN_FAMILIES if "last" in name
    }
    assert added == set(PROBE_DETAIL_FAMILIES) | probe_sources
    per_probe = {name for name, _, _ in brief} & set(PROBE_FAMILIES)
    assert per_probe == set(PROBE_FAMILIES) - {"outagewatch_probe_inconclusive_total"}
    # A probe's source keeps its failures on the default page.
    failure = (
        "outagewatch_source_failures_total",
        (("kind", "http"), ("reason", "timeout"), ("source", source)),
        1.0,
    )
    assert failure in brief


async def test_switching_details_on_a_live_page_changes_every_target() -> None:
    pipeline = probes(20)
    page = page_of(pipeline)
    before = await page.render()
    page.apply(MetricsConfig(probe_details=True))
    during = await page.render()
    assert b"outagewatch_probe_duration_seconds{" in during
    assert during.count(b"\noutagewatch_probe_last_success_timestamp_seconds{") == 20
    page.probe_details = False
    assert await page.render() == before


async def test_a_reload_turns_the_details_on(tmp_path: Path) -> None:
    """The real daemon: metrics.probe_details applies on SIGHUP, no restart."""
    config = tmp_path / "outagewatch.yml"
    probe = (
        "services:\n  claude:\n    probes:\n      api:\n        kind: http\n"
        "        url: http://127.0.0.1:9/\n        interval: 200ms\n        timeout: 150ms\n"
    )
    config.write_text(probe)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    await daemon.start()
    try:
        scrape = await daemon.wait_for_metric('outagewatch_probes_total{probe="api"')
        assert "outagewatch_probe_duration_seconds{" not in scrape
        assert 'outagewatch_source_runs_total{kind="http",source="claude/probe/api"}' not in scrape
        config.write_text("metrics:\n  probe_details: true\n" + probe)
        daemon.signal(signal.SIGHUP)
        scrape = await daemon.wait_for_metric("outagewatch_probe_duration_seconds{")
        assert 'outagewatch_probe_duration_seconds{phase="connect",probe="api"' in scrape
        assert 'outagewatch_source_runs_total{kind="http",source="claude/probe/api"}' in scrape
    finally:
        await daemon.stop()
