"""The App Store lens (`appstore`): ranks of the tracked apps in Apple's top charts.

Sources: one per country x chart (``source.py``). State: the last good read of
each chart, failures per feed and a bounded rank history (``state.py``). It
feeds the `rank` spike signal with each service's best place.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable, Mapping
from dataclasses import asdict, dataclass
from html import escape
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from prometheus_client.core import Metric
from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from outagewatch.catalogue import Families, MetricSpec
from outagewatch.config_types import (
    Duration,
    HttpUrl,
    Interval,
    Model,
    Name,
    Scheduled,
    ServiceConfig,
)
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext, Placed
from outagewatch.observations import LensObservation

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget


# The appstore section's old name for max_backoff, still read.
DEPRECATED_APPSTORE_KEY = "backoff_max"


def _app_id(value: Any) -> Any:
    # YAML reads an unquoted id as an int; the id is a name, keep it as text.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,15}", value):
        raise ValueError(f'a numeric App Store id like "6473753684" is required, got {value!r}')
    return value


AppId = Annotated[str, BeforeValidator(_app_id)]


class AppStoreApp(Model):
    """An app on the App Store, by its numeric id (names change, ids do not)."""

    app_id: AppId = Field(description="The app's numeric App Store id (quote it or not).")


# Chart names as exported in the `chart` label, and the legacy feed each one reads.
LEGACY_CHART_FEEDS = {
    "top-free": "topfreeapplications",
    "top-paid": "toppaidapplications",
    "top-grossing": "topgrossingapplications",
    "top-free-ipad": "topfreeipadapplications",
    "top-paid-ipad": "toppaidipadapplications",
    "top-grossing-ipad": "topgrossingipadapplications",
}
V2_CHARTS = ("top-free", "top-paid")
V2_LIMITS = (10, 25, 50, 100)
APPSTORE_MAX_LIMIT = 100


AppStoreChartName = Literal[
    "top-free", "top-paid", "top-grossing", "top-free-ipad", "top-paid-ipad", "top-grossing-ipad"
]


class AppStoreChart(Model):
    """One chart, read from one feed flavour, in every configured country."""

    chart: AppStoreChartName = Field(description="Which chart.")
    feed: Literal["v2", "legacy-json", "legacy-xml"] = Field(
        default="v2",
        description="v2: the RSS feed generator (top-free, top-paid only); "
        "legacy-json / legacy-xml: the iTunes RSS (every chart, genres).",
    )
    genre: int | None = Field(
        default=None, ge=1, description="Legacy feeds only, e.g. 6007 Productivity."
    )
    name: Name | None = Field(
        default=None, description="The `chart` label; defaults to the chart (and genre)."
    )

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return self.chart if self.genre is None else f"{self.chart}-genre-{self.genre}"

    @model_validator(mode="after")
    def _feed_has_chart(self) -> AppStoreChart:
        if self.feed == "v2" and self.chart not in V2_CHARTS:
            raise ValueError(
                f"the v2 feed has only {', '.join(V2_CHARTS)}: "
                f"read {self.chart} with feed: legacy-json or legacy-xml"
            )
        if self.feed == "v2" and self.genre is not None:
            raise ValueError("the v2 feed has no genre filter: use feed: legacy-json or legacy-xml")
        return self


def _country_code(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip().lower()
        if not re.fullmatch(r"[a-z]{2}", value):
            raise ValueError(
                f"a storefront is a two-letter country code like us or gb, got {value!r}"
            )
    return value


CountryCode = Annotated[str, BeforeValidator(_country_code)]


class AppStoreConfig(Scheduled):
    """App Store chart ranks: every country x chart is one feed, fetched once per interval."""

    countries: list[CountryCode] = Field(
        default_factory=lambda: ["us"], description="Storefronts, as two-letter country codes."
    )
    charts: list[AppStoreChart] = Field(
        default_factory=lambda: [AppStoreChart(chart="top-free")],
        description="The charts read in every country.",
    )
    limit: int = Field(
        default=100, description="Chart depth to fetch: 1..100 (v2: 10, 25, 50 or 100)."
    )
    interval: Interval = Field(default=900.0, description="How often every feed is fetched.")
    timeout: Duration = Field(
        default=30.0, description="Longest a run may take; at most the interval."
    )
    max_backoff: Duration = Field(
        default=21600.0,
        description="Longest pause after 403/429/5xx or a throttled feed. The old name "
        "`backoff_max` is still read (deprecated; a warning names it at load).",
    )
    max_body_bytes: int = Field(
        default=8 << 20, gt=0, description="Read at most this much of a feed."
    )
    redirect_to_other_hosts: bool = Field(
        default=False,
        description="Follow redirects to a host other than the feed's; off: such a "
        "redirect fails the run with reason redirect.",
    )
    v2_base_url: HttpUrl = Field(
        default="https://rss.marketingtools.apple.com/api/v2",
        description="Base address of the v2 feeds.",
    )
    legacy_base_url: HttpUrl = Field(
        default="https://itunes.apple.com",
        description="Base address of the legacy iTunes RSS feeds.",
    )
    apps: dict[Name, AppStoreApp] = Field(
        default_factory=dict,
        description="Apps tracked without a service; the key is their `service` label.",
    )

    @model_validator(mode="before")
    @classmethod
    def _old_backoff_name(cls, data: Any) -> Any:
        # `backoff_max` was this section's name for what every other source calls
        # `max_backoff`; old configs keep working (load_config warns).
        if isinstance(data, dict) and DEPRECATED_APPSTORE_KEY in data:
            if "max_backoff" in data:
                raise ValueError(
                    f"give max_backoff or its deprecated name {DEPRECATED_APPSTORE_KEY}, not both"
                )
            data = dict(data)
            data["max_backoff"] = data.pop(DEPRECATED_APPSTORE_KEY)
        return data

    @field_validator("charts")
    @classmethod
    def _feeds_distinct(cls, charts: list[AppStoreChart]) -> list[AppStoreChart]:
        labels: set[str] = set()
        feeds: set[tuple[str, str, int | None]] = set()
        for index, chart in enumerate(charts, start=1):
            if chart.label in labels:
                raise ValueError(
                    f"chart {chart.label!r} (number {index}) is listed twice; "
                    "give one a distinct name"
                )
            family = "v2" if chart.feed == "v2" else "legacy"
            if (family, chart.chart, chart.genre) in feeds:
                raise ValueError(
                    f"number {index} reads the same feed as an earlier chart; "
                    "one request per feed URL is enough"
                )
            labels.add(chart.label)
            feeds.add((family, chart.chart, chart.genre))
        return charts

    @field_validator("limit")
    @classmethod
    def _limit_in_range(cls, limit: int, info: ValidationInfo) -> int:
        if limit > APPSTORE_MAX_LIMIT:
            raise ValueError(
                f"at most {APPSTORE_MAX_LIMIT}, got {limit}: Apple's chart feeds return "
                f"no more than {APPSTORE_MAX_LIMIT} entries (v2 answers HTTP 500 above it)"
            )
        if limit < 1:
            raise ValueError(f"at least 1, got {limit}")
        charts = info.data.get("charts", [])
        if limit not in V2_LIMITS and any(chart.feed == "v2" for chart in charts):
            raise ValueError(
                f"the v2 feed offers only {', '.join(map(str, V2_LIMITS))}, got {limit}"
            )
        return limit

    @field_validator("v2_base_url", "legacy_base_url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        return url.rstrip("/")

    @field_validator("countries")
    @classmethod
    def _countries_unique(cls, countries: list[str]) -> list[str]:
        twice = sorted({c for c in countries if countries.count(c) > 1})
        if twice:
            raise ValueError(f"listed more than once: {', '.join(twice)}")
        return countries


@dataclass(frozen=True, slots=True)
class ChartSnapshot(LensObservation):
    """One good read of one App Store chart in one country.

    ``ranks`` maps every app id in the chart to its 1-based position; ``depth``
    is how many entries the chart had, so an app absent from ``ranks`` is
    known to be out of the top ``depth``. ``apps`` names the tracked apps that
    read this chart: ``service`` label -> app id.
    """

    country: str
    chart: str
    time: float
    depth: int
    ranks: Mapping[str, int]
    apps: Mapping[str, str]


CHART_LABELS = ("country", "chart")
METRICS = (
    MetricSpec(
        "outagewatch_appstore_rank",
        "gauge",
        "1-based rank of the service's app in the chart's last good read; "
        "absent when out of the chart (see in_chart and chart_depth).",
        ("service", *CHART_LABELS),
    ),
    MetricSpec(
        "outagewatch_appstore_in_chart",
        "gauge",
        "Whether the service's app was in the chart's last good read (1) or "
        "out of its top chart_depth (0).",
        ("service", *CHART_LABELS),
    ),
    MetricSpec(
        "outagewatch_appstore_chart_depth",
        "gauge",
        "Number of entries in the chart's last good read (the N of top N).",
        CHART_LABELS,
    ),
    MetricSpec(
        "outagewatch_appstore_best_rank",
        "gauge",
        "Best rank of the service's app in the chart across countries; "
        "absent when out of it everywhere.",
        ("service", "chart"),
    ),
    MetricSpec(
        "outagewatch_appstore_feed_last_success_timestamp_seconds",
        "gauge",
        "Time of the chart feed's last good read; ranks are as of this time.",
        CHART_LABELS,
    ),
    MetricSpec(
        "outagewatch_appstore_feed_failures_total",
        "counter",
        "Chart fetches that failed (ranks kept from the last good read), by reason.",
        (*CHART_LABELS, "reason"),
    ),
)

# The fields that hold this lens's config: the top-level section and each service's app.
FIELD = "appstore"


def appstore_config(config: Config) -> AppStoreConfig:
    """The config's `appstore` section."""
    return cast(AppStoreConfig, Lens.section(config, FIELD))


def service_app(service: ServiceConfig) -> AppStoreApp | None:
    """A service's App Store app, if it has one."""
    return cast(AppStoreApp | None, Lens.section(service, FIELD))


# source.py and state.py read the records above, so they are imported after them.
from outagewatch.lenses.appstore.source import ChartFeedSource, build_chart_sources  # noqa: E402
from outagewatch.lenses.appstore.state import AppStoreState  # noqa: E402


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
    config_fields = {
        FIELD: (
            AppStoreConfig,
            Field(
                default=AppStoreConfig(),
                description="App Store chart ranks: countries, charts, feeds.",
            ),
        )
    }
    service_fields = {
        FIELD: (
            AppStoreApp | None,
            Field(default=None, description="The service's App Store app, for chart ranks."),
        )
    }
    deprecated_keys = {(FIELD, DEPRECATED_APPSTORE_KEY): f"{FIELD} -> max_backoff"}
    observations = (ChartSnapshot,)
    metrics = METRICS
    kinds = frozenset({ChartFeedSource.kind})
    page_key = "appstore"
    card_position = 3

    def new_state(self) -> AppStoreState:
        return AppStoreState()

    def check_config(self, config: Config) -> None:
        for name in appstore_config(config).apps:
            if name in config.services:
                raise ValueError(
                    f"appstore -> apps -> {name}: {name!r} is a service; "
                    f"set services -> {name} -> appstore -> app_id instead"
                )

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
        fams = Families(*METRICS)
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
        return Evidence(cadence={"appstore": appstore_config(ctx.config).interval})
        yield
