"""The status page at ``/``, rendered from the typed status document.

``StatusQuery.document`` (outagewatch/views.py) reads the state once into a
``StatusDocument``; the page renders from it and ``/api/v1/status`` is its
``json()``, so the two never disagree. The page is server-rendered HTML with
inline SVG charts: no script, no external asset, a meta refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from outagewatch.clock import when_text
from outagewatch.views import (
    PROBE_EVENT_KINDS,
    SIGNAL_TEXT,
    DetectorsView,
    DisruptionView,
    Event,
    ServiceStatus,
    StatusDocument,
    Summary,
    worst_first,
)
from outagewatch.web.charts import Series, line_chart

# The disruption state in words, with a symbol: colour is never the only signal.
STATE_LABELS = {
    "ok": "✓ OK",
    "degraded": "! Degraded",
    "disrupted": "✕ Disrupted",
    "unknown": "? Unknown",
}
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


def _failing_sources_html(service: ServiceStatus) -> str:
    """Runs that observed nothing (a status page unreadable, a key file missing), and why."""
    if not service.failing_sources:
        return ""
    items = "".join(
        f"<li>{escape(f.source)}: <span class=detail>{escape(f.error)}</span></li>"
        for f in service.failing_sources
    )
    return f'<ul class="failing" aria-label="Failing sources">{items}</ul>'


def _summary_html(summary: Summary) -> str:
    """The line the page leads with, bordered in the colour of the worst state."""
    parts = summary.parts
    if not parts:
        return ""
    spans = " · ".join(
        f'<span class="part {escape(state)}">{escape(STATE_LABELS.get(state, state)[0])} '
        f"{escape(text)}</span>"
        for state, text in parts
    )
    return f'<p class="summary {escape(parts[0][0])}" id=summary role=status>{spans}</p>'


def _events_split_html(events: Sequence[Event]) -> str:
    """State changes (and incidents, spikes) apart from the probes' up/down noise."""
    news = [e for e in events if e.kind not in PROBE_EVENT_KINDS]
    noise = [e for e in events if e.kind in PROBE_EVENT_KINDS]
    return (
        f'<h3 id="h-state-changes">State changes</h3><div class="state-changes">'
        f"{_events_html(news)}</div>"
        f'<h3 id="h-probe-events">Probe up/down</h3><div class="probe-events">'
        f"{_events_html(noise)}</div>"
    )


def _figure(caption: str, svg: str) -> str:
    # The caption is for the eye; the SVG's own title and desc are for assistive tech.
    return f"<figure><figcaption aria-hidden=true>{escape(caption)}</figcaption>{svg}</figure>"


def _charts_html(service: ServiceStatus, end: float) -> str:
    charts = service.charts
    key, title, start = service.service, service.title, charts.since
    hours = (end - start) / 3600
    out = []
    success = charts.probe_success_percent
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
    ttft = charts.ttft_seconds
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
    reports = charts.reports_per_5m
    baseline = charts.baseline_per_5m
    peak_reports = max(reports, key=lambda p: p[1], default=None)
    desc = (
        f"Reports per 5 minutes against the usual level: latest {reports[-1][1]:.0f} "
        f"(usual {baseline[-1][1]:.1f}); highest {peak_reports[1]:.0f} at "
        f"{_clock(peak_reports[0])} UTC."
        if reports and peak_reports
        else "No reports yet."
    )
    counted_from = charts.reports_counted_from
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
    ranks = charts.appstore_position
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


def _disruption_html(disruption: DisruptionView, now: float, warming: bool = False) -> str:
    state = disruption.state
    parts = [
        f'<p class="verdict"><span class="state {escape(state)}">'
        f"{escape(STATE_LABELS.get(state, state))}</span>"
    ]
    if warming:  # not a plain "OK": some surges cannot be flagged yet
        parts.append(' <span class="warming">(detectors warming up)</span>')
    if disruption.since is not None:
        since = datetime.fromisoformat(disruption.since).timestamp()
        parts.append(
            f' since <time datetime="{escape(disruption.since)}">{escape(_clock(since))} UTC'
            f"</time> ({escape(_minutes(now - since))})"
        )
    parts.append("</p>")
    if disruption.reasons:
        reasons = "".join(f"<li>{escape(text)}</li>" for text in disruption.reason_texts)
        parts.append(f'<ul class="reasons" aria-label="Reasons">{reasons}</ul>')
    lead = disruption.lead
    if lead is not None and lead.seconds is not None:
        seconds = lead.seconds
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


def _warmup_html(detectors: DetectorsView) -> str:
    """Which detectors cannot alert yet, and how much history each has."""
    if not detectors.warming_up:
        return ""
    by_signal = {d.signal: d for d in detectors.signals}
    items = []
    for signal in detectors.warming_up:
        d = by_signal[signal]
        items.append(
            f"<li>{escape(SIGNAL_TEXT.get(signal, signal))}: "
            f"{escape(_span(d.history_seconds))} of history "
            f"(needs {escape(_span(d.needs_seconds))}), "
            f"{d.points} of {d.needs_points} points</li>"
        )
    return (
        '<div class="warmup"><p>Spike detection warming up: a surge seen only here is not '
        "flagged yet (import report history before the first start: docs/reports.md).</p>"
        f'<ul aria-label="Detectors warming up">{"".join(items)}</ul></div>'
    )


def _card(service: ServiceStatus, now: float) -> str:
    key = service.service
    state = service.disruption.state
    warming = service.detectors.warming_up
    return (
        f'<section class="card {escape(state)}" id="service-{escape(key)}" '
        f'aria-labelledby="h-{escape(key)}">'
        f'<h2 id="h-{escape(key)}">{escape(service.title)}</h2>'
        f"{_disruption_html(service.disruption, now, bool(warming))}"
        f"{_warmup_html(service.detectors)}"
        f"{_lens_sections(service)}"
        f"<h3>Last hours</h3>{_charts_html(service, now)}"
        "</section>"
    )


def _lens_sections(service: ServiceStatus) -> str:
    """Each lens's section of the card, in the lenses' card order."""
    # Runs that observed nothing, whatever their lens: under the probes' table.
    sections = [(1.5, _failing_sources_html(service))]
    for part in service.lenses:
        sections.append((part.lens.card_position, part.lens.card(part.fragment)))
    return "".join(html for _, html in sorted(sections, key=lambda s: s[0]))


def _events_html(events: Sequence[Event]) -> str:
    if not events:
        return "<p>Nothing yet.</p>"
    items = "".join(
        f'<li><time datetime="{escape(e.time)}">{escape(when_text(e.time))}</time> '
        f"<strong>{escape(e.service)}</strong>: {escape(e.text)}</li>"
        for e in events
    )
    return f"<ul>{items}</ul>"


def render_status_page(document: StatusDocument, now: float, refresh: int, base: str = "") -> str:
    """The whole page; works without JavaScript, reloads itself every ``refresh`` s.

    ``base`` is the external URL's path (``--web.external-url``), so links work
    behind a reverse proxy that serves the daemon under a path.
    """
    base = escape(base)
    cards = "".join(_card(service, now) for service in worst_first(document.services))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f'<meta http-equiv=refresh content="{refresh}">'
        f"<title>outagewatch status</title><style>{_STYLE}</style></head><body>"
        "<header><h1>outagewatch status</h1>"
        f"<p>As of {escape(when_text(document.time))}; this page reloads every {refresh} s. "
        f"Version {escape(document.version)}. "
        f'<a href="{base}/metrics">Metrics</a> · <a href="{base}/api/v1/status">JSON</a> · '
        f'<a href="{base}/-/ready">Readiness</a></p>'
        f"{_summary_html(document.summary)}</header>"
        f'<main><div class="cards">{cards or "<p>No services configured.</p>"}</div>'
        '<section class="events" aria-labelledby="h-events"><h2 id="h-events">Recent events</h2>'
        f"{_events_split_html(document.events)}</section></main>"
        "</body></html>"
    )
