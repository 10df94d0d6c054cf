"""The landing page: each service and its probes' last results, plain HTML."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from outagewatch import __version__
from outagewatch.config import Config
from outagewatch.pipeline import State

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;max-width:60rem;color:#1b1b1b}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}
.up{color:#116611}.down{color:#b00020}.unknown{color:#666}
"""


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_landing(config: Config, state: State) -> str:
    """Services with their probes' last results; works without JavaScript."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        '<meta http-equiv=refresh content="30">',
        f"<title>outagewatch</title><style>{_STYLE}</style></head><body>",
        f"<h1>outagewatch</h1><p>Version {escape(__version__)}. "
        '<a href="/metrics">Metrics</a> · <a href="/-/ready">Readiness</a></p>',
    ]
    for service_key, service in config.services.items():
        parts.append(f"<h2>{escape(service.title(service_key))}</h2>")
        if not service.probes:
            parts.append("<p>No probes configured.</p>")
            continue
        parts.append(
            "<table><thead><tr><th>Probe</th><th>Result</th><th>Status</th>"
            "<th>Duration</th><th>Last success</th></tr></thead><tbody>"
        )
        for probe_key, probe_cfg in service.probes.items():
            probe = state.probes.get((service_key, probe_key))
            last = probe.last if probe else None
            if not probe_cfg.enabled:
                result, css = "disabled", "unknown"
            elif last is None:
                result, css = "no result yet", "unknown"
            elif last.success is None:
                result, css = f"inconclusive ({last.reason})", "unknown"
            elif last.success:
                result, css = "up", "up"
            else:
                result, css = f"down: {last.reason}", "down"
            parts.append(
                f"<tr><td>{escape(probe_key)}</td><td class={css}>{escape(result)}</td>"
                f"<td>{last.status_code or '-' if last else '-'}</td>"
                f"<td>{f'{last.duration_seconds * 1000:.0f} ms' if last else '-'}</td>"
                f"<td>{_when(probe.last_success_time if probe else None)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "".join(parts)
