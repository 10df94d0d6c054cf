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
from outagewatch.baseline import HOUR, SLOTS_PER_HOUR, hour_of
from outagewatch.config import ChatProbeBase, Config, ServiceConfig
from outagewatch.detect.disruption import REASON_LENS
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.replay import warmup
from outagewatch.detect.signals import traffic_signal
from outagewatch.failure_text import failure_text
from outagewatch.history import REPORT_BUCKET
from outagewatch.observations import short_detail, status_source_key
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
    "traffic_spike": "traffic surging",
    "traffic_drop": "traffic dropping",
    "no_successful_probe_yet": "no successful probe yet",
    "official_not_read_yet": "official page not read yet",
    "official_fetch_failing": "official page fetch failing",
    "readings_stale": "no fresh reading from probes or the official page",
    "vantage_unhealthy": "vantage unhealthy: this daemon's own network is failing",
}
RECENT_EVENTS = 30
DEFAULT_REFRESH = 30
# A refresh asked for in the query string is kept within these bounds.
REFRESH_BOUNDS = (5, 3600)


def parse_refresh(asked: str | None) -> int:
    """``?refresh=N`` clamped to REFRESH_BOUNDS; anything but ASCII digits is ignored."""
    # str.isdigit accepts "²" and int() does not; long digit runs only clamp.
    if asked is None or not (asked.isascii() and asked.isdigit()):
        return DEFAULT_REFRESH
    if len(asked) > 6:
        return REFRESH_BOUNDS[1]
    return min(max(int(asked), REFRESH_BOUNDS[0]), REFRESH_BOUNDS[1])


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reason_text(reason: str, fetches: list[dict[str, Any]]) -> str:
    text = REASON_TEXT.get(reason, reason)
    if reason == "official_fetch_failing":
        since = min((f["failing_since"] for f in fetches if f["failing_since"]), default=None)
        if since is not None:
            text += f" since {_when(since)}"
    return text


def _disruption(state: State, service: str, cfg: ServiceConfig) -> dict[str, Any]:
    tracker = state.disruption
    status = tracker.status.get(service)
    lead = tracker.last_lead(service)
    reasons = sorted(status.reasons) if status else []
    fetches = _page_fetches(state, service, cfg)
    return {
        "state": status.state if status else "unknown",
        "since": _iso(status.since if status else None),
        "reasons": reasons,
        "reason_texts": [_reason_text(r, fetches) for r in reasons],
        "lead": None
        if lead is None
        else {
            "outcome": lead.outcome,
            "seconds": lead.seconds,
            "incident": lead.incident,
            "incident_start": _iso(lead.start),
        },
    }


# Signal label -> what its detector watches, in words.
SIGNAL_TEXT = {signal: spec.text for signal, spec in SIGNAL_TABLE.items()}


def _detectors(state: State, service: str) -> dict[str, Any]:
    """Each spike detector's warm-up: no alert from it until it has seen enough history.

    ``reports`` is always listed: its detector exists from the first closed bucket.
    """
    signals = state.signals
    names = {signal for svc, signal in signals.detectors if svc == service} | {"reports"}
    entries = [
        warmup(signal, signals.detectors.get((service, signal)), signals.settings)
        for signal in sorted(names)
    ]
    return {
        "warming_up": [w.signal for w in entries if not w.warm],
        "signals": {
            w.signal: {
                "warm": w.warm,
                "points": w.points,
                "history_seconds": round(w.seconds),
                "needs_points": w.need_points,
                "needs_seconds": round(w.need_seconds),
            }
            for w in entries
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
        "sub_reason": last.sub_reason if last else None,
        "detail": last.detail if last else None,
        "status_code": last.status_code if last else None,
        "duration_seconds": last.duration_seconds if last else None,
        "ttft_seconds": last.chat.ttft_seconds if last and last.chat else None,
        "time": _iso(last.time if last else None),
        "last_success": _iso(probe.last_success_time if probe else None),
    }


def _page_fetches(state: State, service: str, cfg: ServiceConfig) -> list[dict[str, Any]]:
    """Each enabled official page's fetching: failing (since when, why) or not."""
    out = []
    for name, page in sorted(cfg.status_pages.items()):
        if not page.enabled:
            continue
        run = state.runs.get(status_source_key(service, name))
        out.append(
            {
                "page": name,
                "failing": run is not None and run.failing_since is not None,
                "failing_since": _iso(run.failing_since if run else None),
                "error": run.last_error if run else None,
                "last_success": _iso(run.last_success_time if run else None),
            }
        )
    return out


def _official(state: State, service: str, cfg: ServiceConfig) -> dict[str, Any] | None:
    """None only when no official page is configured: a failing fetch says so."""
    fetches = _page_fetches(state, service, cfg)
    pages = sorted((k[1], v.last) for k, v in state.status_pages.items() if k[0] == service)
    if not pages and not fetches:
        return None
    level = max((snapshot.level for _, snapshot in pages), default=None)
    return {
        "level": level,
        "level_name": OFFICIAL_LEVELS[level] if level is not None else None,
        "fetch": fetches,
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


def _traffic(state: State, service: str, cfg: ServiceConfig) -> list[dict[str, Any]]:
    """Each traffic query's last value and its detector's state."""
    out = []
    for name, query in cfg.traffic.items():
        sample = state.traffic.get((service, name))
        status = state.signals.status.get((service, traffic_signal(name)))
        if status is None:
            verdict = "waiting"
        elif status.verdict.active:
            verdict = "drop" if status.direction < 0 else "surge"
        else:
            verdict = "normal"
        out.append(
            {
                "query": name,
                "enabled": query.enabled,
                "value": sample.value if sample else None,
                "time": _iso(sample.time if sample else None),
                "state": verdict,
            }
        )
    return out


def _reports(
    state: State, service: str, cfg: ServiceConfig, now: float, base: str
) -> dict[str, Any]:
    reports = state.reports
    counts = reports.services.get(service)
    last_5m = counts.last_5m(now) if counts else 0
    baseline = reports.baseline(service, now)
    return {
        "last_5m": last_5m,
        "baseline_per_5m": round(baseline, 3),
        "ratio": round(last_5m / max(baseline, reports.floor_per_5m), 3),
        "floor_per_5m": reports.floor_per_5m,
        "total": sum(counts.total.values()) if counts else 0,
        "page": f"{base}/report/{service}" if cfg.reports.public else None,
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
    counts = _report_counts(state, service, since, now)
    return {
        "since": since,
        "probe_success_percent": [list(p) for p in state.history.success_percent(service, since)],
        "ttft_seconds": {
            probe: [list(p) for p in points]
            for probe, points in state.history.ttft_points(service, since).items()
            if probe in chat_probes
        },
        "reports_per_5m": [[t, float(c)] for t, c in counts],
        "reports_counted_from": _iso(state.disruption.started.get(service)),
        "baseline_per_5m": [[t, round(state.reports.baseline(service, t), 3)] for t, _ in counts],
        "appstore_position": _rank_series(state, service, since),
    }


def status_document(config: Config, state: State, now: float, base: str = "") -> dict[str, Any]:
    """Everything the status page shows, as JSON-ready data; links start with ``base``."""
    services = []
    # Sources whose last run observed nothing, by service (the key's first part).
    failing: dict[str, list[dict[str, Any]]] = {}
    for source, run in sorted(state.runs.items()):
        if run.last_error is not None:
            entry = {"source": source, "kind": run.kind, "error": short_detail(run.last_error)}
            failing.setdefault(source.split("/", 1)[0], []).append(entry)
    for key, cfg in config.services.items():
        services.append(
            {
                "service": key,
                "title": cfg.title(key),
                "disruption": _disruption(state, key, cfg),
                "detectors": _detectors(state, key),
                "probes": [_probe_entry(p, c.enabled, state, key) for p, c in cfg.probes.items()],
                "official": _official(state, key, cfg),
                "appstore": [
                    {"country": r.country, "chart": r.chart, "rank": r.rank, "depth": r.depth}
                    for r in state.appstore.service_ranks()
                    if r.service == key
                ],
                "reports": _reports(state, key, cfg, now, base),
                "traffic": _traffic(state, key, cfg),
                "charts": _charts(state, key, config, now),
                "failing_sources": failing.get(key, []),
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
        "summary": summary(services),
        "events": [
            {"time": _iso(time), "service": service, "kind": kind, "text": text}
            for time, service, kind, text in _bounded_events(events)
        ],
    }


# -- Read at 3 a.m.: summary, worst first, failures in words, events split --

# Worst first: what needs a look comes before what is fine.
STATE_ORDER = ("disrupted", "degraded", "unknown", "ok")
# Why a service is unknown (detect/disruption.py UNKNOWN_REASONS), in words.
UNKNOWN_REASON_TEXT = {
    "no_successful_probe_yet": "no successful probe yet",
    "official_not_read_yet": "official page not read yet",
    "official_fetch_failing": "official page fetch failing",
    "readings_stale": "readings stale",
    "vantage_unhealthy": "vantage unhealthy",
}
PROBE_EVENT_KINDS = frozenset({"probe_up", "probe_down"})
# An unknown reason shared by more services than this is counted, not listed.
SUMMARY_NAMES = 3


def _unknown_reasons(disruption: dict[str, Any]) -> list[str]:
    """Why an unknown service is unknown: its reasons less the warning signs."""
    return [r for r in disruption["reasons"] if r not in REASON_LENS]


def _reason_words(reason: str) -> str:
    if not reason:
        return "no reason given"
    text = UNKNOWN_REASON_TEXT.get(reason) or REASON_TEXT.get(reason)
    return text or reason.replace("_", " ")


def worst_first(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Disrupted, degraded, unknown, ok; then by title."""
    rank = {state: index for index, state in enumerate(STATE_ORDER)}
    return sorted(
        services,
        key=lambda s: (
            rank.get(s["disruption"]["state"], len(rank)),
            s["title"].casefold(),
            s["service"],
        ),
    )


def summary(services: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per state, unknown services grouped by reason, and the line the page leads with."""
    states = dict.fromkeys(STATE_ORDER, 0)
    groups: dict[str, list[dict[str, Any]]] = {}
    for service in worst_first(services):
        state = service["disruption"]["state"]
        states[state] = states.get(state, 0) + 1
        if state == "unknown":
            for reason in _unknown_reasons(service["disruption"]) or [""]:
                groups.setdefault(reason, []).append(service)
    unknown = [
        {
            "reason": reason or None,
            "text": _reason_words(reason),
            "services": [s["service"] for s in members],
            "titles": [s["title"] for s in members],
        }
        for reason, members in sorted(groups.items(), key=lambda g: (-len(g[1]), not g[0], g[0]))
    ]
    parts = _summary_parts(len(services), states, unknown)
    return {
        "services": len(services),
        "states": states,
        "worst": parts[0][0] if parts else None,
        "unknown_reasons": unknown,
        "text": " · ".join(text for _, text in parts) or "No services configured.",
    }


def _summary_parts(
    total: int, states: dict[str, int], unknown: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """(state, words) per state present, worst first: "2 of 9 disrupted", "1 unknown: …"."""
    if total and states.get("ok") == total:
        return [("ok", f"All {total} OK" if total > 1 else "1 of 1 OK")]
    parts: list[tuple[str, str]] = []
    for state in STATE_ORDER:
        count = states.get(state, 0)
        if not count:
            continue
        word = "OK" if state == "ok" else state
        text = f"{count} {word}" if parts else f"{count} of {total} {word}"
        if state == "unknown":
            groups = []
            for group in unknown:
                names = group["titles"]
                who = ", ".join(names) if len(names) <= SUMMARY_NAMES else f"{len(names)} services"
                groups.append(f"{group['text']} ({who})")
            text += ": " + "; ".join(groups)
        parts.append((state, text))
    return parts


def _bounded_events(
    events: list[tuple[float, str, str, str]],
) -> list[tuple[float, str, str, str]]:
    """Newest first: RECENT_EVENTS probe up/down events and RECENT_EVENTS of the rest.

    Bounded apart, so a flapping probe never pushes the state changes off the page.
    """
    noise = [e for e in events if e[2] in PROBE_EVENT_KINDS][:RECENT_EVENTS]
    news = [e for e in events if e[2] not in PROBE_EVENT_KINDS][:RECENT_EVENTS]
    return sorted(noise + news, key=lambda e: e[0], reverse=True)


def _report_counts(
    state: State, service: str, since: float, now: float
) -> list[tuple[float, int | float]]:
    """Reports per 5 minutes for the chart, with no zeros where nobody was counting.

    The chart history holds only what this process received since it started
    watching. Before that, the stored (or imported) reports are known per hour,
    so those 5 minutes get their hour's average; before the stored history
    begins there is no point at all, not a zero.
    """
    live = state.history.report_counts(service, since, now)
    watching = state.disruption.started.get(service)
    if watching is None:
        return list(live)
    counts = state.reports.services.get(service)
    hourly = counts.hourly if counts else {}
    known_from = state.reports.history_start
    first_live = int(watching // REPORT_BUCKET) * REPORT_BUCKET
    start_hour = hour_of(watching)
    # The start hour's reports before the start: its stored total less what was counted live.
    live_in_start_hour = sum(c for t, c in live if hour_of(t) == start_hour)
    before_start = max(hourly.get(start_hour, 0) - live_in_start_hour, 0)
    buckets_before = (first_live - start_hour * HOUR) / REPORT_BUCKET
    out: list[tuple[float, int | float]] = []
    for t, count in live:
        if t >= first_live:
            out.append((t, count))
        elif t + REPORT_BUCKET > known_from:
            hour = hour_of(t)
            if hour == start_hour:
                out.append((t, round(before_start / buckets_before, 2)))
            else:
                out.append((t, round(hourly.get(hour, 0) / SLOTS_PER_HOUR, 2)))
    return out


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
.detail{font-weight:400;font-size:.8rem;color:#444;overflow-wrap:anywhere}
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
.summary{font-size:1.25rem;font-weight:600;background:#fff;border-radius:.5rem;
padding:.5rem 1rem;margin:.5rem 0 1rem;border-top:1px solid #ccc;border-right:1px solid #ccc;
border-bottom:1px solid #ccc;border-left-style:solid;border-left-width:.6rem}
.summary .part{white-space:nowrap}.summary .part.unknown{white-space:normal}
.events h3{font-size:1rem;margin:.6rem 0 .2rem}
figure{margin:.4rem 0 .8rem}figcaption{font-size:.85rem;color:#333}
"""


def _when(iso: str | None) -> str:
    return "never" if iso is None else iso.replace("T", " ").replace("Z", " UTC")


def _probe_rows(service: dict[str, Any]) -> str:
    if not service["probes"]:
        return "<p>No probes configured.</p>"
    rows = []
    for probe in service["probes"]:
        result, code = probe["result"], probe["status_code"]
        failure = failure_text(probe["reason"], probe["sub_reason"], code)
        if result == "down":
            text, css = f"✕ down: {failure}", "down"
        elif result == "up":
            text, css = "✓ up", "up"
        elif result == "inconclusive":
            text, css = f"? inconclusive ({failure})", ""
        else:
            text, css = result, ""
        timing = "-"
        if probe["ttft_seconds"] is not None:
            timing = f"first token {probe['ttft_seconds']:.2f} s"
        elif probe["duration_seconds"] is not None:
            timing = f"{probe['duration_seconds'] * 1000:.0f} ms"
        why = ""
        if result in ("down", "inconclusive") and probe["detail"] not in (None, f"HTTP {code}"):
            why = f"<br><span class=detail>{escape(probe['detail'])}</span>"
        rows.append(
            f"<tr><td>{escape(probe['probe'])}</td><td class='{css}'>{escape(text)}{why}</td>"
            f"<td>{escape(timing)}</td><td>{escape(_when(probe['last_success']))}</td></tr>"
        )
    return (
        "<table><thead><tr><th scope=col>Probe</th><th scope=col>Last result</th>"
        "<th scope=col>Timing</th><th scope=col>Last success</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _failing_sources_html(service: dict[str, Any]) -> str:
    """Runs that observed nothing (a status page unreadable, a key file missing), and why."""
    if not service["failing_sources"]:
        return ""
    items = "".join(
        f"<li>{escape(f['source'])}: <span class=detail>{escape(f['error'])}</span></li>"
        for f in service["failing_sources"]
    )
    return f'<ul class="failing" aria-label="Failing sources">{items}</ul>'


def _official_html(official: dict[str, Any] | None) -> str:
    if official is None:
        return "<p>No official status page configured.</p>"
    failing = "".join(
        f"<p class=official-fetch><strong class=down>Fetch failing</strong> since "
        f"{escape(_when(f['failing_since']))}: {escape(f['error'] or '')}</p>"
        for f in official["fetch"]
        if f["failing"]
    )
    if official["level_name"] is None:
        return failing or "<p class=official>Not read yet.</p>"
    incidents = [i for page in official["pages"] for i in page["open_incidents"]]
    text = f"<p class=official>Official level: <strong>{escape(official['level_name'])}</strong>"
    if incidents:
        names = "; ".join(f"{i['name']} ({i['impact']})" for i in incidents)
        text += f". Open incidents: {escape(names)}"
    return text + "</p>" + failing


def _appstore_html(ranks: list[dict[str, Any]]) -> str:
    if not ranks:
        return "<p>No App Store chart read yet.</p>"
    items = []
    for r in ranks:
        where = f"#{r['rank']}" if r["rank"] is not None else f"not in the top {r['depth']}"
        items.append(f"{escape(r['country'].upper())} {escape(r['chart'])}: {escape(where)}")
    return f"<p>{', '.join(items)}</p>"


def _traffic_html(traffic: list[dict[str, Any]]) -> str:
    if not traffic:
        return ""
    items = []
    for t in traffic:
        value = "not read yet" if t["value"] is None else f"{t['value']:.4g}"
        items.append(f"{escape(t['query'])}: {escape(value)} ({escape(t['state'])})")
    return f"<h3>Traffic</h3><p class=traffic>{', '.join(items)}</p>"


def _reports_html(reports: dict[str, Any]) -> str:
    text = (
        f"<p class=reports>Reports in the last 5 minutes: <strong>{reports['last_5m']}</strong> "
        f"({_usual_text(reports)}). "
        f"Total since start: <span class=report-total>{reports['total']}</span>."
    )
    if reports["page"]:
        text += f' <a href="{escape(reports["page"])}">Report a problem</a>'
    return text + "</p>"


def _usual_text(reports: dict[str, Any]) -> str:
    """The usual level and the ratio to it; no ratio against a usual below the floor.

    The ratio is taken against the floor when the usual level is lower (so a
    quiet hour does not turn 2 reports into a spike), and "1.0 times" a printed
    usual of 0.0 reads as nonsense: below the floor the page says so instead.
    """
    baseline, floor = reports["baseline_per_5m"], reports.get("floor_per_5m", 0.0)
    if baseline < floor or baseline <= 0:
        return f"usual: under {floor:g}" if floor > 0 else "no usual level yet"
    return f"usual: {baseline:.1f}, {reports['ratio']:.1f} times that"


def _summary_html(summary: dict[str, Any]) -> str:
    """The line the page leads with, bordered in the colour of the worst state."""
    parts = _summary_parts(summary["services"], summary["states"], summary["unknown_reasons"])
    if not parts:
        return ""
    spans = " · ".join(
        f'<span class="part {escape(state)}">{escape(STATE_LABELS.get(state, state)[0])} '
        f"{escape(text)}</span>"
        for state, text in parts
    )
    return f'<p class="summary {escape(parts[0][0])}" id=summary role=status>{spans}</p>'


def _events_split_html(events: list[dict[str, Any]]) -> str:
    """State changes (and incidents, spikes) apart from the probes' up/down noise."""
    news = [e for e in events if e["kind"] not in PROBE_EVENT_KINDS]
    noise = [e for e in events if e["kind"] in PROBE_EVENT_KINDS]
    return (
        f'<h3 id="h-state-changes">State changes</h3><div class="state-changes">'
        f"{_events_html(news)}</div>"
        f'<h3 id="h-probe-events">Probe up/down</h3><div class="probe-events">'
        f"{_events_html(noise)}</div>"
    )


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
    counted_from = charts.get("reports_counted_from")
    if reports and counted_from is not None and reports[0][0] < _timestamp(counted_from):
        desc += (
            f" Before {_clock(_timestamp(counted_from))} UTC (before outagewatch started), "
            "hourly averages of the stored reports."
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


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _minutes(seconds: float) -> str:
    minutes = abs(seconds) / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{abs(seconds):.0f} s"


def _disruption_html(disruption: dict[str, Any], now: float, warming: bool = False) -> str:
    state = disruption["state"]
    parts = [
        f'<p class="verdict"><span class="state {escape(state)}">'
        f"{escape(STATE_LABELS.get(state, state))}</span>"
    ]
    if warming:  # not a plain "OK": some surges cannot be flagged yet
        parts.append(' <span class="warming">(detectors warming up)</span>')
    if disruption["since"] is not None:
        since = datetime.fromisoformat(disruption["since"]).timestamp()
        parts.append(
            f' since <time datetime="{escape(disruption["since"])}">{escape(_clock(since))} UTC'
            f"</time> ({escape(_minutes(now - since))})"
        )
    parts.append("</p>")
    if disruption["reasons"]:
        reasons = "".join(f"<li>{escape(text)}</li>" for text in disruption["reason_texts"])
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


def _span(seconds: float) -> str:
    """A length of history: hours and minutes past an hour."""
    if seconds < 3600:
        return _minutes(seconds)
    hours, rest = divmod(int(seconds) // 60, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def _warmup_html(detectors: dict[str, Any] | None) -> str:
    """Which detectors cannot alert yet, and how much history each has."""
    if not detectors or not detectors["warming_up"]:
        return ""
    items = []
    for signal in detectors["warming_up"]:
        d = detectors["signals"][signal]
        items.append(
            f"<li>{escape(SIGNAL_TEXT.get(signal, signal))}: "
            f"{escape(_span(d['history_seconds']))} of history "
            f"(needs {escape(_span(d['needs_seconds']))}), "
            f"{d['points']} of {d['needs_points']} points</li>"
        )
    return (
        '<div class="warmup"><p>Spike detection warming up: a surge seen only here is not '
        "flagged yet (import report history before the first start: docs/reports.md).</p>"
        f'<ul aria-label="Detectors warming up">{"".join(items)}</ul></div>'
    )


def _card(service: dict[str, Any], now: float) -> str:
    key = service["service"]
    state = service["disruption"]["state"]
    warming = (service.get("detectors") or {}).get("warming_up")
    return (
        f'<section class="card {escape(state)}" id="service-{escape(key)}" '
        f'aria-labelledby="h-{escape(key)}">'
        f'<h2 id="h-{escape(key)}">{escape(service["title"])}</h2>'
        f"{_disruption_html(service['disruption'], now, bool(warming))}"
        f"{_warmup_html(service.get('detectors'))}"
        f"<h3>Official status page</h3>{_official_html(service['official'])}"
        f"<h3>Probes</h3>{_probe_rows(service)}{_failing_sources_html(service)}"
        f"<h3>User reports</h3>{_reports_html(service['reports'])}"
        f"<h3>App Store</h3>{_appstore_html(service['appstore'])}"
        f"{_traffic_html(service['traffic'])}"
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


def render_status_page(document: dict[str, Any], now: float, refresh: int, base: str = "") -> str:
    """The whole page; works without JavaScript, reloads itself every ``refresh`` s.

    ``base`` is the external URL's path (``--web.external-url``), so links work
    behind a reverse proxy that serves the daemon under a path.
    """
    base = escape(base)
    cards = "".join(_card(service, now) for service in worst_first(document["services"]))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta http-equiv=refresh content="{refresh}">'
        f"<title>outagewatch status</title><style>{_STYLE}</style></head><body>"
        "<header><h1>outagewatch status</h1>"
        f"<p>As of {escape(_when(document['time']))}; this page reloads every {refresh} s. "
        f"Version {escape(document['version'])}. "
        f'<a href="{base}/metrics">Metrics</a> · <a href="{base}/api/v1/status">JSON</a> · '
        f'<a href="{base}/-/ready">Readiness</a></p>'
        f"{_summary_html(document['summary'])}</header>"
        f'<main><div class="cards">{cards or "<p>No services configured.</p>"}</div>'
        '<section class="events" aria-labelledby="h-events"><h2 id="h-events">Recent events</h2>'
        f"{_events_split_html(document['events'])}</section></main>"
        "</body></html>"
    )
