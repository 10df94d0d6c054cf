"""The reports lens: users' outage reports, pushed to ``POST /api/v1/reports``.

Reports have no source: the web intake validates them and the pipeline commits
them to the store before they count. State: counts per service, hourly and in
recent buckets, and the baseline for this time of week (``baseline.py``). It
feeds the `reports` spike signal.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass
from html import escape
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from outagewatch.catalogue import Families
from outagewatch.config_types import ReportsConfig, ServiceReports
from outagewatch.detect.signals import REPORT_BUCKET_S
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext
from outagewatch.lenses.reports.baseline import ReportsState
from outagewatch.observations import Report

if TYPE_CHECKING:
    from outagewatch.clock import Clock
    from outagewatch.histogram import Histogram


@dataclass(frozen=True)
class ReportsView:
    """A service's reports on the status page: now, the usual level, the ratio."""

    last_5m: int
    baseline_per_5m: float
    ratio: float
    floor_per_5m: float
    total: int
    page: str | None  # the public report page, when the service has one


class ReportsLens(Lens[ReportsState]):
    name = "reports"
    config_models = (ReportsConfig, ServiceReports)
    observations = (Report,)
    page_key = "reports"
    card_position = 2

    def new_state(self) -> ReportsState:
        return ReportsState()

    def apply(self, pipeline: Folding, reports: ReportsState, report: Report) -> None:
        reports.roll(report.time)
        counts = reports.counts(report.service)
        counts.total[report.problem] += 1
        counts.add(report.time)
        pipeline.state.history.report(report)
        pipeline.state.signals.report(report.service, report.time)

    def view(self, reports: ReportsState, ctx: PageContext) -> ReportsView:
        service, cfg, now, base = ctx.service, ctx.service_config, ctx.now, ctx.base
        counts = reports.services.get(service)
        last_5m = counts.last_5m(now) if counts else 0
        baseline = reports.baseline(service, now)
        return ReportsView(
            last_5m=last_5m,
            baseline_per_5m=round(baseline, 3),
            ratio=round(last_5m / max(baseline, reports.floor_per_5m), 3),
            floor_per_5m=reports.floor_per_5m,
            total=sum(counts.total.values()) if counts else 0,
            page=f"{base}/report/{service}" if cfg.reports.public else None,
        )

    def page(self, reports: ReportsState, ctx: PageContext) -> dict[str, Any]:
        return asdict(self.view(reports, ctx))

    def card(self, fragment: dict[str, Any]) -> str:
        return f"<h3>User reports</h3>{reports_html(fragment)}"

    def evidence(
        self, reports: ReportsState, ctx: EvidenceContext
    ) -> Generator[None, None, Evidence]:
        return Evidence(cadence={"reports": REPORT_BUCKET_S})
        yield


class StoreHealth(Protocol):
    """What the collector reads of the store (``store.Store`` is one): lenses sit
    below the store and never import it."""

    @property
    def commit_durations(self) -> Histogram: ...
    @property
    def commit_failures(self) -> int: ...
    def size_bytes(self) -> int: ...


# Report counts need the clock (the last 5 minutes, this hour's baseline), so they
# render from a collector of their own, with the store's health beside them.
class ReportsCollector(Collector):
    """Renders report counts, baselines and store health at scrape time."""

    def __init__(self, reports: ReportsState, clock: Clock, store: StoreHealth) -> None:
        self._reports = reports
        self._clock = clock
        self._store = store

    def collect(self) -> Iterator[Metric]:
        reports = self._reports
        now = self._clock.time()
        fams = Families(
            "outagewatch_reports_total",
            "outagewatch_reports_duplicates_total",
            "outagewatch_reports_rejected_total",
            "outagewatch_reports_baseline_per_5m",
            "outagewatch_reports_last_5m",
            "outagewatch_reports_ratio_to_baseline",
            "outagewatch_store_commit_duration_seconds",
            "outagewatch_store_commit_failures_total",
            "outagewatch_store_size_bytes",
        )
        for service, counts in sorted(reports.services.items()):
            for problem in reports.problems:
                fams.add("outagewatch_reports_total", [service, problem], counts.total[problem])
            fams.add("outagewatch_reports_duplicates_total", [service], counts.duplicates)
            baseline = reports.baseline(service, now)
            last = counts.last_5m(now)
            fams.add("outagewatch_reports_baseline_per_5m", [service], baseline)
            fams.add("outagewatch_reports_last_5m", [service], last)
            fams.add(
                "outagewatch_reports_ratio_to_baseline",
                [service],
                last / max(baseline, reports.floor_per_5m),
            )
        for reason, count in sorted(reports.rejected.items()):
            fams.add("outagewatch_reports_rejected_total", [reason], count)
        hist = self._store.commit_durations
        fams.add_histogram(
            "outagewatch_store_commit_duration_seconds", [], hist.cumulative(), hist.sum
        )
        fams.add("outagewatch_store_commit_failures_total", [], self._store.commit_failures)
        fams.add("outagewatch_store_size_bytes", [], self._store.size_bytes())
        yield from fams


def reports_html(reports: dict[str, Any]) -> str:
    text = (
        f"<p class=reports>Reports in the last 5 minutes: <strong>{reports['last_5m']}</strong> "
        f"({usual_text(reports)}). "
        f"Total since start: <span class=report-total>{reports['total']}</span>."
    )
    if reports["page"]:
        text += f' <a href="{escape(reports["page"])}">Report a problem</a>'
    return text + "</p>"


def usual_text(reports: dict[str, Any]) -> str:
    """The usual level and the ratio to it; no ratio against a usual below the floor.

    The ratio is taken against the floor when the usual level is lower (so a
    quiet hour does not turn 2 reports into a spike), and "1.0 times" a printed
    usual of 0.0 reads as nonsense: below the floor the page says so instead.
    """
    baseline, floor = reports["baseline_per_5m"], reports.get("floor_per_5m", 0.0)
    if baseline < floor or baseline <= 0:
        return f"usual: under {floor:g}" if floor > 0 else "no usual level yet"
    return f"usual: {baseline:.1f}, {reports['ratio']:.1f} times that"
