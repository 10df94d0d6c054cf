"""The status page at ``/`` and its JSON twin at ``/api/v1/status``.

``status_document`` reads the state once into plain data; the page and the
JSON both render from it, so they never disagree. The page is server-rendered
HTML with inline SVG charts: no script, no external asset, a meta refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from outagewatch import __version__
from outagewatch.config import ChatProbeBase, Config, ServiceConfig
from outagewatch.pipeline import State
from outagewatch.ranks import RankPoint
from outagewatch.web.charts import Series, line_chart

OFFICIAL_LEVELS = ("operational", "minor", "major", "critical")
# The disruption state in words, with a symbol: colour is never the only signal.
STATE_LABELS = {
    "ok": "✓ OK",
    "degraded": "! Degraded",
    "disrupted": "✕ Disrupted",
    "unknown": "? Unknown",
}
# Each disruption reason (detect/disruption.py) as a reader would put it.
REASON_TEXT = {
    "probes_failing": "most probes failing",
    "some_probes_failing": "some probes failing",
    "failure_ratio_spike": "probe failures spiking",
    "chat_overloaded": "chat API answering overloaded",
    "ttft_spike": "first tokens slow",
    "latency_spike": "answers slow",
    "report_spike": "user reports spiking",
    "official_minor": "official page: minor incident",
    "official_major": "official page: major incident",
    "rank_surge": "App Store rank surging (a warning of load)",
}
RECENT_EVENTS = 30
DEFAULT_REFRESH = 30
# A refresh asked for in the query string is kept within these bounds.
REFRESH_BOUNDS = (5, 3600)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _disruption(state: State, service: str) -> dict[str, Any]:
    tracker = state.disruption
    status = tracker.status.get(service)
    lead = tracker.last_lead(service)
    return {
        "state": status.state if status else "unknown",
        "since": _iso(status.since if status else None),
        "reasons": sorted(status.reasons) if status else [],
        "lead": None
        if lead is None
        else {
            "outcome": lead.outcome,
            "seconds": lead.seconds,
            "incident": lead.incident,
            "incident_start": _iso(lead.start),
        },
    }


def _probe_entry(key: str, enabled: bool, state: State, service: str) -> dict[str, Any]:
    probe = state.probes.get((service, key))
    last = probe.last if probe else None
    if not enabled:
        result = "disabled"
    elif last is None:
        result = "no result yet"
    elif last.success is None:
        result = "inconclusive"
    else:
        result = "up" if last.success else "down"
    return {
        "probe": key,
        "kind": probe.kind if probe else None,
        "result": result,
        "reason": last.reason if last else None,
        "status_code": last.status_code if last else None,
        "duration_seconds": last.duration_seconds if last else None,
        "ttft_seconds": last.chat.ttft_seconds if last and last.chat else None,
        "time": _iso(last.time if last else None),
        "last_success": _iso(probe.last_success_time if probe else None),
    }


def _official(state: State, service: str) -> dict[str, Any] | None:
    pages = sorted((k[1], v.last) for k, v in state.status_pages.items() if k[0] == service)
    if not pages:
        return None
    level = max(snapshot.level for _, snapshot in pages)
    return {
        "level": level,
        "level_name": OFFICIAL_LEVELS[level],
        "pages": [
            {
                "page": page,
                "indicator": snapshot.indicator,
                "time": _iso(snapshot.time),
                "components": dict(sorted(snapshot.components.items())),
                "open_incidents": [
                    {"name": i.name, "impact": i.impact, "start": _iso(i.start)}
                    for i in snapshot.open_incidents
                ],
            }
            for page, snapshot in pages
        ],
    }


def _reports(state: State, service: str, cfg: ServiceConfig, now: float) -> dict[str, Any]:
    reports = state.reports
    counts = reports.services.get(service)
    last_5m = counts.last_5m(now) if counts else 0
    baseline = reports.baseline(service, now)
    return {
        "last_5m": last_5m,
        "baseline_per_5m": round(baseline, 3),
        "ratio": round(last_5m / max(baseline, reports.floor_per_5m), 3),
        "total": sum(counts.total.values()) if counts else 0,
        "page": f"/report/{service}" if cfg.reports.public else None,
    }


def _rank_series(state: State, service: str, since: float) -> dict[str, list[list[float]]]:
    """Position per country in the service's first charted feed (depth + 1 when out)."""
    series: dict[str, list[RankPoint]] = {}
    chart = None
    for owner, country, chart_name in state.appstore.history.series_keys():
        if owner != service or (chart is not None and chart_name != chart):
            continue
        chart = chart_name
        series[country] = [
            p
            for p in state.appstore.history.points((owner, country, chart_name))
            if p.time >= since
        ]
    return {
        country: [[p.time, float(p.position)] for p in points]
        for country, points in series.items()
        if points
    }


def _charts(state: State, service: str, config: Config, now: float) -> dict[str, Any]:
    since = now - state.history.window
    cfg = config.services[service]
    chat_probes = {k for k, p in cfg.probes.items() if isinstance(p, ChatProbeBase)}
    counts = state.history.report_counts(service, since, now)
    return {
        "since": since,
        "probe_success_percent": [list(p) for p in state.history.success_percent(service, since)],
        "ttft_seconds": {
            probe: [list(p) for p in points]
            for probe, points in state.history.ttft_points(service, since).items()
            if probe in chat_probes
        },
        "reports_per_5m": [[t, float(c)] for t, c in counts],
        "baseline_per_5m": [[t, round(state.reports.baseline(service, t), 3)] for t, _ in counts],
        "appstore_position": _rank_series(state, service, since),
    }


def status_document(config: Config, state: State, now: float) -> dict[str, Any]:
    """Everything the status page shows, as JSON-ready data."""
    services = []
    for key, cfg in config.services.items():
        services.append(
            {
                "service": key,
                "title": cfg.title(key),
                "disruption": _disruption(state, key),
                "probes": [_probe_entry(p, c.enabled, state, key) for p, c in cfg.probes.items()],
                "official": _official(state, key),
                "appstore": [
                    {"country": r.country, "chart": r.chart, "rank": r.rank, "depth": r.depth}
                    for r in state.appstore.service_ranks()
                    if r.service == key
                ],
                "reports": _reports(state, key, cfg, now),
                "charts": _charts(state, key, config, now),
            }
        )
    events = [(e.time, e.service, e.kind, e.text) for e in state.history.events]
    for t in state.disruption.recent_events(RECENT_EVENTS):
        reasons = ", ".join(REASON_TEXT.get(r, r) for r in t.reasons)
        text = f"now {t.state} (was {t.previous})" + (f": {reasons}" if reasons else "")
        events.append((t.time, t.service, "state", text))
    events.sort(key=lambda e: e[0], reverse=True)
    return {
        "version": __version__,
        "time": _iso(now),
        "services": services,
        "events": [
            {"time": _iso(time), "service": service, "kind": kind, "text": text}
            for time, service, kind, text in events[:RECENT_EVENTS]
        ],
    }


# -- HTML ------------------------------------------------------------------

_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1rem;max-width:72rem;color:#1b1b1b;
background:#f4f4f2;line-height:1.4}
header p,footer{color:#444}
a{color:#0b57d0}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(20rem,1fr));gap:1rem}
.card{background:#fff;border:1px solid #ccc;border-radius:.5rem;padding:1rem;
border-left-width:.6rem}
.card h2{margin:0 0 .4rem;font-size:1.3rem}
.card h3{font-size:1rem;margin:.9rem 0 .3rem}
.state{display:inline-block;font-weight:700;padding:.15rem .6rem;border-radius:1rem;color:#fff}
.ok{border-left-color:#2e7d32}.state.ok{background:#2e7d32}
.degraded{border-left-color:#b26a00}.state.degraded{background:#b26a00}
.disrupted{border-left-color:#b3261e}.state.disrupted{background:#b3261e}
.unknown{border-left-color:#666}.state.unknown{background:#666}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.2rem .4rem;border-bottom:1px solid #e2e2e2}
.up{color:#1b5e20}.down{color:#b3261e;font-weight:600}
.chart{width:100%;height:auto;max-height:8rem;font-size:9px;fill:#444}
.legend{list-style:none;padding:0;margin:0;font-size:.8rem;display:flex;gap:.8rem}
.legend svg{vertical-align:middle;margin-right:.2rem}
.events{background:#fff;border:1px solid #ccc;border-radius:.5rem;padding:.5rem 1rem;
margin-top:1rem}
.events li{margin:.2rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem .8rem;margin:.3rem 0}
dt{color:#444}dd{margin:0}
.verdict{font-size:1.1rem;margin:.2rem 0}.reasons{margin:.2rem 0;padding-left:1.2rem}
.lead{background:#eef3fb;padding:.3rem .5rem;border-radius:.3rem}
figure{margin:.4rem 0 .8rem}figcaption{font-size:.85rem;color:#333}
"""


def _when(iso: str | None) -> str:
    return "never" if iso is None else iso.replace("T", " ").replace("Z", " UTC")


def _probe_rows(service: dict[str, Any]) -> str:
    if not service["probes"]:
        return "<p>No probes configured.</p>"
    rows = []
    for probe in service["probes"]:
        result = probe["result"]
        if result == "down":
            text, css = f"✕ down: {probe['reason'] or 'unknown'}", "down"
        elif result == "up":
            text, css = "✓ up", "up"
        elif result == "inconclusive":
            text, css = f"? inconclusive ({probe['reason']})", ""
        else:
            text, css = result, ""
        timing = "-"
        if probe["ttft_seconds"] is not None:
            timing = f"first token {probe['ttft_seconds']:.2f} s"
        elif probe["duration_seconds"] is not None:
            timing = f"{probe['duration_seconds'] * 1000:.0f} ms"
        rows.append(
            f"<tr><td>{escape(probe['probe'])}</td><td class='{css}'>{escape(text)}</td>"
            f"<td>{escape(timing)}</td><td>{escape(_when(probe['last_success']))}</td></tr>"
        )
    return (
        "<table><thead><tr><th scope=col>Probe</th><th scope=col>Last result</th>"
        "<th scope=col>Timing</th><th scope=col>Last success</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _official_html(official: dict[str, Any] | None) -> str:
    if official is None:
        return "<p>No official status page configured.</p>"
    incidents = [i for page in official["pages"] for i in page["open_incidents"]]
    text = f"<p class=official>Official level: <strong>{escape(official['level_name'])}</strong>"
    if incidents:
        names = "; ".join(f"{i['name']} ({i['impact']})" for i in incidents)
        text += f". Open incidents: {escape(names)}"
    return text + "</p>"


def _appstore_html(ranks: list[dict[str, Any]]) -> str:
    if not ranks:
        return "<p>No App Store chart read yet.</p>"
    items = []
    for r in ranks:
        where = f"#{r['rank']}" if r["rank"] is not None else f"not in the top {r['depth']}"
        items.append(f"{escape(r['country'].upper())} {escape(r['chart'])}: {escape(where)}")
    return f"<p>{', '.join(items)}</p>"


def _reports_html(reports: dict[str, Any]) -> str:
    text = (
        f"<p class=reports>Reports in the last 5 minutes: <strong>{reports['last_5m']}</strong> "
        f"(usual: {reports['baseline_per_5m']:.1f}, {reports['ratio']:.1f} times that). "
        f"Total since start: <span class=report-total>{reports['total']}</span>."
    )
    if reports["page"]:
        text += f' <a href="{escape(reports["page"])}">Report a problem</a>'
    return text + "</p>"


def _figure(caption: str, svg: str) -> str:
    # The caption is for the eye; the SVG's own title and desc are for assistive tech.
    return f"<figure><figcaption aria-hidden=true>{escape(caption)}</figcaption>{svg}</figure>"


def _charts_html(service: dict[str, Any], end: float) -> str:
    charts = service["charts"]
    key, title, start = service["service"], service["title"], charts["since"]
    hours = (end - start) / 3600
    out = []
    success = charts["probe_success_percent"]
    desc = "No probe results yet."
    if success:
        low = min(success, key=lambda p: p[1])
        desc = (
            f"Probe success over the last {hours:g} hours, per 5 minutes: latest "
            f"{success[-1][1]:.0f} %, lowest {low[1]:.0f} % at {_clock(low[0])} UTC."
        )
    out.append(
        _figure(
            "Probe success",
            line_chart(
                f"{key}-success",
                f"{title}: probe success",
                desc,
                [Series("probe success %", success)],
                start,
                end,
                (0.0, 100.0),
                "%",
            ),
        )
    )
    ttft = charts["ttft_seconds"]
    if ttft:
        lines = [Series(p, pts) for p, pts in ttft.items()]
        latest = [f"{p} {pts[-1][1]:.2f} s" for p, pts in ttft.items() if pts]
        peak = max((x[1] for pts in ttft.values() for x in pts), default=None)
        desc = (
            f"Time to first token of the chat probes: latest {', '.join(latest)}; "
            f"highest {peak:.2f} s."
            if peak is not None
            else "No time to first token measured yet."
        )
        out.append(
            _figure(
                "Time to first token",
                line_chart(
                    f"{key}-ttft",
                    f"{title}: time to first token",
                    desc,
                    lines,
                    start,
                    end,
                    unit="s",
                ),
            )
        )
    reports = charts["reports_per_5m"]
    baseline = charts["baseline_per_5m"]
    peak_reports = max(reports, key=lambda p: p[1], default=None)
    desc = (
        f"Reports per 5 minutes against the usual level: latest {reports[-1][1]:.0f} "
        f"(usual {baseline[-1][1]:.1f}); highest {peak_reports[1]:.0f} at "
        f"{_clock(peak_reports[0])} UTC."
        if reports and peak_reports
        else "No reports yet."
    )
    out.append(
        _figure(
            "User reports per 5 minutes",
            line_chart(
                f"{key}-reports",
                f"{title}: user reports vs usual",
                desc,
                [
                    Series("reports per 5 min", reports),
                    Series("usual", baseline),
                ],
                start,
                end,
            ),
        )
    )
    ranks = charts["appstore_position"]
    if ranks:
        lines = [Series(c.upper(), pts) for c, pts in ranks.items()]
        best = min((x[1] for pts in ranks.values() for x in pts), default=1.0)
        worst = max((x[1] for pts in ranks.values() for x in pts), default=1.0)
        now_ranks = ", ".join(f"{c.upper()} #{pts[-1][1]:.0f}" for c, pts in ranks.items())
        out.append(
            _figure(
                "App Store rank (top is #1)",
                line_chart(
                    f"{key}-rank",
                    f"{title}: App Store rank",
                    f"App Store chart position (1 is the top): latest {now_ranks}; "
                    f"best {best:.0f}.",
                    lines,
                    start,
                    end,
                    (1.0, max(worst, 10.0)),
                    inverted=True,
                ),
            )
        )
    return "".join(out)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M")


def _minutes(seconds: float) -> str:
    minutes = abs(seconds) / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{abs(seconds):.0f} s"


def _disruption_html(disruption: dict[str, Any], now: float) -> str:
    state = disruption["state"]
    parts = [
        f'<p class="verdict"><span class="state {escape(state)}">'
        f"{escape(STATE_LABELS.get(state, state))}</span>"
    ]
    if disruption["since"] is not None:
        since = datetime.fromisoformat(disruption["since"]).timestamp()
        parts.append(
            f' since <time datetime="{escape(disruption["since"])}">{escape(_clock(since))} UTC'
            f"</time> ({escape(_minutes(now - since))})"
        )
    parts.append("</p>")
    if disruption["reasons"]:
        reasons = "".join(
            f"<li>{escape(REASON_TEXT.get(r, r))}</li>" for r in disruption["reasons"]
        )
        parts.append(f'<ul class="reasons" aria-label="Reasons">{reasons}</ul>')
    lead = disruption["lead"]
    if lead is not None and lead["seconds"] is not None:
        seconds = lead["seconds"]
        when = "before" if seconds >= 0 else "after"
        parts.append(
            f'<p class="lead">Detection lead: outagewatch flagged it <strong>'
            f"{escape(_minutes(seconds))} {when}</strong> the official page's incident start.</p>"
        )
    return "".join(parts)


def _card(service: dict[str, Any], now: float) -> str:
    key = service["service"]
    state = service["disruption"]["state"]
    return (
        f'<section class="card {escape(state)}" id="service-{escape(key)}" '
        f'aria-labelledby="h-{escape(key)}">'
        f'<h2 id="h-{escape(key)}">{escape(service["title"])}</h2>'
        f"{_disruption_html(service['disruption'], now)}"
        f"<h3>Official status page</h3>{_official_html(service['official'])}"
        f"<h3>Probes</h3>{_probe_rows(service)}"
        f"<h3>User reports</h3>{_reports_html(service['reports'])}"
        f"<h3>App Store</h3>{_appstore_html(service['appstore'])}"
        f"<h3>Last hours</h3>{_charts_html(service, now)}"
        "</section>"
    )


def _events_html(events: list[dict[str, Any]]) -> str:
    if not events:
        return "<p>Nothing yet.</p>"
    items = "".join(
        f'<li><time datetime="{escape(e["time"])}">{escape(_when(e["time"]))}</time> '
        f"<strong>{escape(e['service'])}</strong>: {escape(e['text'])}</li>"
        for e in events
    )
    return f"<ul>{items}</ul>"


def render_status_page(document: dict[str, Any], now: float, refresh: int) -> str:
    """The whole page; works without JavaScript, reloads itself every ``refresh`` s."""
    cards = "".join(_card(service, now) for service in document["services"])
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta http-equiv=refresh content="{refresh}">'
        f"<title>outagewatch status</title><style>{_STYLE}</style></head><body>"
        "<header><h1>outagewatch status</h1>"
        f"<p>As of {escape(_when(document['time']))}; this page reloads every {refresh} s. "
        f"Version {escape(document['version'])}. "
        '<a href="/metrics">Metrics</a> · <a href="/api/v1/status">JSON</a> · '
        '<a href="/-/ready">Readiness</a></p></header>'
        f'<main><div class="cards">{cards or "<p>No services configured.</p>"}</div>'
        '<section class="events" aria-labelledby="h-events"><h2 id="h-events">Recent events</h2>'
        f"{_events_html(document['events'])}</section></main>"
        "</body></html>"
    )
