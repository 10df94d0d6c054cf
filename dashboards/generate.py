"""Generate outagewatch's Grafana dashboards: ``python dashboards/generate.py``.

Writes Overview, Service and Health as JSON beside this file. The JSON is committed;
tests/deploy/test_dashboards.py fails when it differs from what this script writes.
Every panel reads the ``datasource`` variable, every rate uses ``$__rate_interval``,
every panel has a unit, and uids are fixed so links and alert ``dashboard_url``s hold.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

HERE = Path(__file__).parent
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RUNBOOKS = "https://outagewatch.example.com/runbooks"
UIDS = {
    "overview": "outagewatch-overview",
    "service": "outagewatch-service",
    "health": "outagewatch-health",
}
SERVICE = 'service=~"$service"'

Query = tuple[str, str]  # (PromQL, legend)
PanelBuilder = timeseries.Panel | stat.Panel | statetimeline.Panel


def _mapping(texts: dict[int, tuple[str, str]]) -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                str(value): model.ValueMappingResult(text=text, color=color, index=i)
                for i, (value, (text, color)) in enumerate(texts.items())
            }
        )
    ]


DISRUPTION = _mapping(
    {0: ("ok", "green"), 1: ("degraded", "orange"), 2: ("disrupted", "red"), 3: ("unknown", "gray")}
)
OFFICIAL = _mapping(
    {0: ("none", "green"), 1: ("minor", "yellow"), 2: ("major", "orange"), 3: ("critical", "red")}
)


def _targets(panel: PanelBuilder, queries: Sequence[Query]) -> None:
    for ref, (expr, legend) in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(
            prometheus.Dataquery()
            .expr(expr)
            .legend_format(legend)
            .ref_id(ref)
            .datasource(DATASOURCE)
        )


def series(
    title: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    runbook: str | None = None,
    none_is_zero: bool = False,
) -> timeseries.Panel:
    """A time series panel over the datasource variable.

    ``none_is_zero``: for counters of events that may never have happened (a failure
    counter exists from its first failure), "No data" means 0 and is shown so.
    """
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(8)
    if none_is_zero:
        panel.no_value("0")
    _targets(panel, queries)
    if runbook:
        panel.links([db.DashboardLink("Runbook").url(f"{RUNBOOKS}#{runbook}").target_blank(True)])
    return panel


def states(
    title: str, mappings: list[model.ValueMapping], *queries: Query, width: int = 24
) -> statetimeline.Panel:
    """A state timeline whose numeric codes the mappings name."""
    panel = (
        statetimeline.Panel()
        .title(title)
        .unit("none")
        .mappings(mappings)
        .datasource(DATASOURCE)
        .span(width)
        .height(8)
    )
    _targets(panel, queries)
    return panel


def single(title: str, unit: str, *queries: Query, width: int = 6) -> stat.Panel:
    """A stat panel showing the latest value."""
    panel = stat.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(5)
    _targets(panel, queries)
    return panel


def _base(key: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(UIDS[key])
        .description(description)
        .tags(["outagewatch"])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .links(
            [
                db.DashboardLink("outagewatch")
                .type(model.DashboardLinkType.DASHBOARDS)
                .tags(["outagewatch"])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True),
                db.DashboardLink("Firing alerts")
                .type(model.DashboardLinkType.LINK)
                .url("/alerting/list?search=Outagewatch")
                .icon("bolt"),
                db.DashboardLink("Runbooks")
                .type(model.DashboardLinkType.LINK)
                .url(RUNBOOKS)
                .icon("doc")
                .target_blank(True),
            ]
        )
    )


def _service_variable(multi: bool) -> db.QueryVariable:
    variable = (
        db.QueryVariable("service")
        .label("Service")
        .datasource(DATASOURCE)
        .query("label_values(outagewatch_probes_total, service)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return variable.all_value(".*") if multi else variable


def _disruption_code(selector: str) -> str:
    # One number per service for a state timeline: 0 ok, 1 degraded, 2 disrupted, 3 unknown.
    parts = [
        f'max by (service) (outagewatch_disruption_state{{{selector}, state="{state}"}}) * {code}'
        for state, code in (("degraded", 1), ("disrupted", 2), ("unknown", 3))
    ]
    return " + ".join(parts)


def overview() -> db.Dashboard:
    """Every service on one page."""
    rate = "[$__rate_interval]"
    return (
        _base("overview", "outagewatch / Overview", "Every watched chatbot service at a glance.")
        .with_variable(_service_variable(multi=True))
        .with_row(db.Row("Is anything down?"))
        .with_panel(
            states("Disruption state", DISRUPTION, (_disruption_code(SERVICE), "{{service}}"))
        )
        .with_panel(
            series(
                "Probe success",
                "percentunit",
                (f"avg by (service) (outagewatch_probe_success{{{SERVICE}}})", "{{service}}"),
                runbook="outagewatchendpointdown",
            )
        )
        .with_panel(
            states(
                "Official status level",
                OFFICIAL,
                (f"max by (service) (outagewatch_status_level{{{SERVICE}}})", "{{service}}"),
                width=12,
            )
        )
        .with_row(db.Row("Chat"))
        .with_panel(
            series(
                "Time to first token p50 / p95",
                "s",
                # A chat probe runs every 5 minutes: a $__rate_interval window mostly
                # holds no observation. The recording rules' 15-minute window always does.
                (
                    "max by (service) "
                    f"(service:outagewatch_chat_ttft_seconds:p50_rate15m{{{SERVICE}}})",
                    "{{service}} p50",
                ),
                (
                    "max by (service) "
                    f"(service:outagewatch_chat_ttft_seconds:p95_rate15m{{{SERVICE}}})",
                    "{{service}} p95",
                ),
            )
        )
        .with_panel(
            series(
                "Chat outcome classes",
                "none",
                (
                    f"sum by (service, outcome) (outagewatch_chat_outcome{{{SERVICE}}} == 1)",
                    "{{service}} {{outcome}}",
                ),
                runbook="outagewatchchatbotoverloaded",
            )
        )
        .with_row(db.Row("Users and the App Store"))
        .with_panel(
            series(
                "Reports vs baseline",
                "none",
                (
                    f"max by (service) (outagewatch_reports_ratio_to_baseline{{{SERVICE}}})",
                    "{{service}} ratio",
                ),
                runbook="outagewatchreportspike",
            )
        )
        .with_panel(
            series(
                "Reports per 5 minutes (all daemons)",
                "short",
                (
                    f"sum by (service) (rate(outagewatch_reports_total{{{SERVICE}}}{rate})) * 300",
                    "{{service}}",
                ),
            )
        )
        .with_panel(
            series(
                "App Store best rank",
                "none",
                (
                    f"min by (service, chart) (outagewatch_appstore_best_rank{{{SERVICE}}})",
                    "{{service}} {{chart}}",
                ),
                runbook="outagewatchappstoresurge",
            )
        )
        .with_panel(
            series(
                "Detection lead over the official page",
                "s",
                (
                    f"max by (service) (outagewatch_detection_lead_seconds{{{SERVICE}}})",
                    "{{service}}",
                ),
            )
        )
    )


def service() -> db.Dashboard:
    """One service in depth."""
    sel = 'service="$service"'
    rate = "[$__rate_interval]"
    return (
        _base("service", "outagewatch / Service", "One chatbot service through every lens.")
        .with_variable(_service_variable(multi=False))
        .with_row(db.Row("State"))
        .with_panel(states("Disruption state", DISRUPTION, (_disruption_code(sel), "{{service}}")))
        .with_panel(
            series(
                "Disruption reasons",
                "none",
                (f"max by (reason) (outagewatch_disruption_reason{{{sel}}})", "{{reason}}"),
                runbook="outagewatchservicedisrupted",
            )
        )
        .with_panel(
            series(
                "Spike scores",
                "percentunit",
                (f"max by (signal) (outagewatch_spike_score{{{sel}}})", "{{signal}}"),
            )
        )
        .with_row(db.Row("Probes"))
        .with_panel(
            series(
                "Probe success",
                "percentunit",
                (f"avg by (probe) (outagewatch_probe_success{{{sel}}})", "{{probe}}"),
                runbook="outagewatchendpointdown",
            )
        )
        .with_panel(
            series(
                "Probe failures by reason",
                "ops",
                # Per service: per probe and reason cost up to 7 series a probe (issue 20).
                (
                    "sum by (reason, sub_reason) "
                    f"(rate(outagewatch_probe_failure_reasons_total{{{sel}}}{rate}))",
                    "{{reason}} {{sub_reason}}",
                ),
                none_is_zero=True,
            )
        )
        .with_panel(
            series(
                "Probe failures by probe",
                "ops",
                (
                    f"sum by (probe) (rate(outagewatch_probe_failures_total{{{sel}}}{rate}))",
                    "{{probe}}",
                ),
                none_is_zero=True,
            )
        )
        .with_panel(
            series(
                "Probe phases (mean per run)",
                "s",
                (
                    # Per service and kind: per-probe phases are off by default
                    # (metrics.probe_details), five series a probe on every scrape.
                    "sum by (kind, phase) "
                    f"(rate(outagewatch_probe_phase_seconds_total{{{sel}}}{rate})) "
                    "/ on (kind) group_left () sum by (kind) "
                    f"(rate(outagewatch_probe_total_duration_seconds_count{{{sel}}}{rate}))",
                    "{{kind}} {{phase}}",
                ),
            )
        )
        .with_panel(
            series(
                "HTTP status code",
                "none",
                (f"max by (probe) (outagewatch_probe_http_status_code{{{sel}}})", "{{probe}}"),
            )
        )
        .with_panel(
            series(
                "TLS certificate lifetime left",
                "s",
                (
                    "min by (probe) (outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds"
                    f"{{{sel}}}) - time()",
                    "{{probe}}",
                ),
                runbook="outagewatchtlscertificateexpiring",
            )
        )
        .with_row(db.Row("Chat"))
        .with_panel(
            series(
                "Time to first token p50 / p95",
                "s",
                # 15-minute windows (recording rules): the probe runs every 5 minutes.
                (
                    "max by (probe) "
                    f"(service_probe:outagewatch_chat_ttft_seconds:p50_rate15m{{{sel}}})",
                    "{{probe}} p50",
                ),
                (
                    "max by (probe) "
                    f"(service_probe:outagewatch_chat_ttft_seconds:p95_rate15m{{{sel}}})",
                    "{{probe}} p95",
                ),
            )
        )
        .with_panel(
            series(
                "Chat outcome",
                "none",
                (
                    f"max by (probe, outcome) (outagewatch_chat_outcome{{{sel}}} == 1)",
                    "{{probe}} {{outcome}}",
                ),
                runbook="outagewatchchatbotoverloaded",
            )
        )
        .with_panel(
            series(
                "Completion time and largest chunk gap",
                "s",
                (f"max by (probe) (outagewatch_chat_duration_seconds{{{sel}}})", "{{probe}} total"),
                (
                    f"max by (probe) (outagewatch_chat_max_chunk_gap_seconds{{{sel}}})",
                    "{{probe}} gap",
                ),
            )
        )
        .with_panel(
            series(
                "Output tokens per second",
                "short",
                (
                    f"max by (probe) (outagewatch_chat_output_tokens_per_second{{{sel}}})",
                    "{{probe}}",
                ),
            )
        )
        .with_panel(
            series(
                "Rate-limit headroom",
                "percentunit",
                (
                    "min by (probe, resource) "
                    f"(outagewatch_chat_ratelimit_remaining_ratio{{{sel}}})",
                    "{{probe}} {{resource}}",
                ),
            )
        )
        .with_row(db.Row("Official status page"))
        .with_panel(
            states(
                "Official level",
                OFFICIAL,
                (f"max by (service) (outagewatch_status_level{{{sel}}})", "{{service}}"),
                width=12,
            )
        )
        .with_panel(
            series(
                "Components not operational",
                "none",
                (
                    f"max by (component, status) (outagewatch_status_component{{{sel}, "
                    'status!="operational"} == 1)',
                    "{{component}} {{status}}",
                ),
                runbook="outagewatchofficialincident",
            )
        )
        .with_panel(
            series(
                "Open incidents by impact",
                "none",
                (f"max by (impact) (outagewatch_status_open_incidents{{{sel}}})", "{{impact}}"),
                (f"max(outagewatch_status_maintenance_active{{{sel}}})", "maintenance"),
            )
        )
        .with_panel(
            series(
                "Earliest open incident started",
                "s",
                (
                    f"time() - min(outagewatch_status_incident_start_timestamp_seconds{{{sel}}})",
                    "open for",
                ),
                runbook="outagewatchofficialincident",
            )
        )
        .with_row(db.Row("Reports and ranks"))
        .with_panel(
            series(
                "Reports per 5 minutes by problem",
                "short",
                (
                    f"sum by (problem) (rate(outagewatch_reports_total{{{sel}}}{rate})) * 300",
                    "{{problem}}",
                ),
                runbook="outagewatchreportspike",
            )
        )
        .with_panel(
            series(
                "Last 5 minutes vs baseline",
                "short",
                (f"sum(outagewatch_reports_last_5m{{{sel}}})", "last 5m"),
                (f"sum(outagewatch_reports_baseline_per_5m{{{sel}}})", "baseline"),
            )
        )
        .with_panel(
            series(
                "App Store rank by country",
                "none",
                (
                    f"min by (country, chart) (outagewatch_appstore_rank{{{sel}}})",
                    "{{country}} {{chart}}",
                ),
                runbook="outagewatchappstoresurge",
            )
        )
        .with_panel(
            series(
                "Detection lead",
                "s",
                (f"max(outagewatch_detection_lead_seconds{{{sel}}})", "lead"),
                width=6,
            )
        )
        .with_panel(
            series(
                "Official incidents: flagged early, late, missed",
                "short",
                (
                    f"max by (outcome) (outagewatch_detection_incidents_total{{{sel}}})",
                    "{{outcome}}",
                ),
                width=6,
            )
        )
    )


def health() -> db.Dashboard:
    """outagewatch itself: scrapes, sources, store, budgets."""
    rate = "[$__rate_interval]"
    job = 'job="outagewatch"'
    return (
        _base("health", "outagewatch / Health", "The daemons themselves: are they watching?")
        .with_row(db.Row("Daemons"))
        .with_panel(
            single(
                "Daemons up",
                "short",
                (f"sum(up{{{job}}})", "up"),
            )
        )
        .with_panel(
            single(
                "Config reload OK",
                "bool_yes_no",
                (f"min(outagewatch_config_last_reload_successful{{{job}}})", "reload"),
            )
        )
        .with_panel(
            single(
                "Scrape duration (max)",
                "s",
                (f"max(scrape_duration_seconds{{{job}}})", "scrape"),
            )
        )
        .with_panel(
            single(
                "Samples per scrape",
                "short",
                (f"max(scrape_samples_scraped{{{job}}})", "samples"),
            )
        )
        .with_panel(
            series(
                "CPU",
                "percentunit",
                (f"rate(process_cpu_seconds_total{{{job}}}{rate})", "{{instance}}"),
            )
        )
        .with_panel(
            series(
                "Resident memory",
                "bytes",
                (f"process_resident_memory_bytes{{{job}}}", "{{instance}}"),
            )
        )
        .with_row(db.Row("Sources"))
        .with_panel(
            series(
                "Time since last success",
                "s",
                (
                    f"time() - outagewatch_source_last_success_timestamp_seconds{{{job}}}",
                    "{{instance}} {{source}}",
                ),
                runbook="outagewatchsourcestale",
            )
        )
        .with_panel(
            series(
                "Run duration (last run)",
                "s",
                (
                    f"outagewatch_source_last_run_duration_seconds{{{job}}}",
                    "{{instance}} {{source}}",
                ),
            )
        )
        .with_panel(
            series(
                "Runs per second by kind",
                "ops",
                (
                    # Probes' runs from their per-service histogram: a probe's own
                    # source_runs_total is there only with metrics.probe_details.
                    f"sum by (kind) (rate(outagewatch_source_runs_total{{{job}}}{rate})) "
                    "or sum by (kind) "
                    f"(rate(outagewatch_probe_total_duration_seconds_count{{{job}}}{rate}))",
                    "{{kind}}",
                ),
            )
        )
        .with_panel(
            series(
                "Failed runs by kind and reason",
                "ops",
                (
                    "sum by (kind, reason) "
                    f"(rate(outagewatch_source_failures_total{{{job}}}{rate}))",
                    "{{kind}} {{reason}}",
                ),
                none_is_zero=True,
            )
        )
        .with_panel(
            series(
                "Age of the official status and chart readings",
                "s",
                (
                    f"time() - max by (service) (outagewatch_status_last_success_timestamp_seconds"
                    f"{{{job}}})",
                    "status {{service}}",
                ),
                (
                    "time() - max by (country, chart) "
                    f"(outagewatch_appstore_feed_last_success_timestamp_seconds{{{job}}})",
                    "chart {{country}} {{chart}}",
                ),
                runbook="outagewatchsourcestale",
            )
        )
        .with_panel(
            series(
                "App Store feed failures by reason",
                "ops",
                (
                    "sum by (country, chart, reason) "
                    f"(rate(outagewatch_appstore_feed_failures_total{{{job}}}{rate}))",
                    "{{country}} {{chart}} {{reason}}",
                ),
                none_is_zero=True,
            )
        )
        .with_row(db.Row("Store, reports and budgets"))
        .with_panel(
            series(
                "Store commit p99",
                "s",
                (
                    "histogram_quantile(0.99, sum by (instance, le) "
                    f"(rate(outagewatch_store_commit_duration_seconds_bucket{{{job}}}{rate})))",
                    "{{instance}}",
                ),
            )
        )
        .with_panel(
            series(
                "Store size",
                "bytes",
                (f"outagewatch_store_size_bytes{{{job}}}", "{{instance}}"),
            )
        )
        .with_panel(
            series(
                "Store commit failures",
                "ops",
                (
                    "sum by (instance) "
                    f"(rate(outagewatch_store_commit_failures_total{{{job}}}{rate}))",
                    "{{instance}}",
                ),
                none_is_zero=True,
            )
        )
        .with_panel(
            series(
                "Rejected reports by reason",
                "ops",
                (
                    f"sum by (reason) (rate(outagewatch_reports_rejected_total{{{job}}}{rate}))",
                    "{{reason}}",
                ),
                none_is_zero=True,
            )
        )
        .with_panel(
            series(
                "Chat budget left",
                "percentunit",
                (
                    "min by (service, probe, resource) "
                    f"(outagewatch_chat_budget_remaining_ratio{{{job}}})",
                    "{{service}} {{probe}} {{resource}}",
                ),
                runbook="outagewatchchatbudgetexhausted",
            )
        )
        .with_panel(
            series(
                "Chat probes paused by their budget",
                "short",
                (f"sum(outagewatch_chat_budget_exhausted{{{job}}})", "paused"),
                runbook="outagewatchchatbudgetexhausted",
            )
        )
        .with_panel(
            series(
                "Build",
                "none",
                (
                    f"max by (version, revision) (outagewatch_build_info{{{job}}})",
                    "{{version}} {{revision}}",
                ),
            )
        )
    )


DASHBOARDS = {"overview": overview, "service": service, "health": health}


def _numbered(board: db.Dashboard) -> dict[str, object]:
    """The dashboard as JSON data, panels numbered in order (stable ids for panel links)."""
    data: dict[str, object] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    panels = data["panels"]
    assert isinstance(panels, list)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return data


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {
        f"{name}.json": json.dumps(_numbered(build()), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> int:
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
