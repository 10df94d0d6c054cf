"""The App Store lens (`appstore`): ranks of the tracked apps in Apple's top charts.

Sources: one per country x chart (``source.py``). State: the last good read of
each chart, failures per feed and a bounded rank history (``state.py``). It
feeds the `rank` spike signal with each service's best place.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.config_types import AppStoreApp, AppStoreChart, AppStoreConfig
from outagewatch.lenses.appstore.source import ChartFeedSource, build_chart_sources
from outagewatch.lenses.appstore.state import AppStoreState
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext, Placed
from outagewatch.observations import ChartSnapshot

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget


@dataclass(frozen=True)
class RankView:
    """Where a service's app stands in one chart of one country (None: out of the top depth)."""

    country: str
    chart: str
    rank: int | None
    depth: int


class AppStoreLens(Lens[AppStoreState]):
    name = "appstore"
    config_models = (AppStoreConfig, AppStoreApp, AppStoreChart)
    observations = (ChartSnapshot,)
    kinds = frozenset({ChartFeedSource.kind})
    page_key = "appstore"
    card_position = 3

    def new_state(self) -> AppStoreState:
        return AppStoreState()

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        return [Placed(source, "owner") for source in build_chart_sources(config)]

    def apply(self, pipeline: Folding, state: AppStoreState, snapshot: ChartSnapshot) -> None:
        state.apply(snapshot)
        for service in sorted(snapshot.apps):
            # The best place over every chart and country; out of a chart is just below it.
            best = min(
                (r.rank if r.rank is not None else r.depth + 1)
                for r in state.service_ranks()
                if r.service == service
            )
            pipeline.state.signals.rank(service, snapshot.time, best)

    def run_failed(self, state: AppStoreState, key: str, reason: str) -> None:
        state.record_failure(key, reason)

    def retain(
        self, state: AppStoreState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        state.retain(source_keys)

    def families(self, state: AppStoreState) -> Iterable[Metric]:
        fams = Families(
            "outagewatch_appstore_rank",
            "outagewatch_appstore_in_chart",
            "outagewatch_appstore_chart_depth",
            "outagewatch_appstore_best_rank",
            "outagewatch_appstore_feed_last_success_timestamp_seconds",
            "outagewatch_appstore_feed_failures_total",
        )
        for item in state.service_ranks():
            labels = [item.service, item.country, item.chart]
            if item.rank is not None:
                fams.add("outagewatch_appstore_rank", labels, item.rank)
            fams.add("outagewatch_appstore_in_chart", labels, int(item.rank is not None))
        for (service, chart), rank in sorted(state.best_ranks().items()):
            fams.add("outagewatch_appstore_best_rank", [service, chart], rank)
        for (country, chart), feed in sorted(state.feeds.items()):
            labels = [country, chart]
            if feed.last is not None:
                fams.add("outagewatch_appstore_chart_depth", labels, feed.last.depth)
            if feed.last_success_time is not None:
                fams.add(
                    "outagewatch_appstore_feed_last_success_timestamp_seconds",
                    labels,
                    feed.last_success_time,
                )
            for reason, count in sorted(feed.failures.items()):
                fams.add("outagewatch_appstore_feed_failures_total", [*labels, reason], count)
        return fams

    def views(self, state: AppStoreState, ctx: PageContext) -> list[RankView]:
        return [
            RankView(r.country, r.chart, r.rank, r.depth)
            for r in state.service_ranks()
            if r.service == ctx.service
        ]

    def page(self, state: AppStoreState, ctx: PageContext) -> list[dict[str, Any]]:
        return [asdict(view) for view in self.views(state, ctx)]

    def card(self, fragment: list[dict[str, Any]]) -> str:
        if not fragment:
            return "<h3>App Store</h3><p>No App Store chart read yet.</p>"
        items = []
        for r in fragment:
            where = f"#{r['rank']}" if r["rank"] is not None else f"not in the top {r['depth']}"
            items.append(f"{escape(r['country'].upper())} {escape(r['chart'])}: {escape(where)}")
        return f"<h3>App Store</h3><p>{', '.join(items)}</p>"

    def evidence(
        self, state: AppStoreState, ctx: EvidenceContext
    ) -> Generator[None, None, Evidence]:
        return Evidence(cadence={"rank": ctx.config.appstore.interval})
        yield
