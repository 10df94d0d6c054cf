"""Small inline SVG line charts for the status page: no script, no external asset.

Each chart is an ``<svg role="img">`` with a ``<title>`` and a ``<desc>`` that
says in words what the lines show, so a screen reader (or a text browser)
gets the same news as the eye. Series differ by dash pattern as well as by
colour, and the legend names them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 320, 96
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 34, 4, 6, 14
# (stroke colour, dash pattern) per series in order: colour is never the only cue.
_STYLES = (("#1f5fbf", ""), ("#b3261e", "5 3"), ("#6b4fa0", "1 3"), ("#2e7d32", "8 3 2 3"))


@dataclass(frozen=True, slots=True)
class Series:
    """One line: its name for the legend and its [time, value] points, oldest first."""

    name: str
    points: Sequence[Sequence[float]]


def _number(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def line_chart(
    chart_id: str,
    title: str,
    description: str,
    series: Sequence[Series],
    start: float,
    end: float,
    y_range: tuple[float, float] | None = None,
    unit: str = "",
    inverted: bool = False,
) -> str:
    """An SVG chart of ``series`` over [start, end]; ``inverted`` puts low values on top.

    Without ``y_range`` the axis spans 0 to the largest value. An empty chart
    still renders, with its description saying there is no data.
    """
    values = [p[1] for s in series for p in s.points if math.isfinite(p[1])]
    if y_range is None:
        top = max(values, default=1.0)
        y_range = (0.0, top if top > 0 else 1.0)
    low, high = y_range
    if high <= low:
        high = low + 1.0
    plot_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    plot_h = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    span = max(end - start, 1.0)

    def xy(t: float, v: float) -> str:
        x = _PAD_LEFT + (min(max(t, start), end) - start) / span * plot_w
        frac = (min(max(v, low), high) - low) / (high - low)
        if not inverted:
            frac = 1.0 - frac
        return f"{x:.1f},{_PAD_TOP + frac * plot_h:.1f}"

    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    top_label, bottom_label = (low, high) if inverted else (high, low)
    parts = [
        f'<svg class=chart role=img viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'aria-labelledby="{title_id} {desc_id}" preserveAspectRatio="xMidYMid meet">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<desc id="{desc_id}">{escape(description)}</desc>',
        f'<rect x="{_PAD_LEFT}" y="{_PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{_PAD_LEFT - 3}" y="{_PAD_TOP + 8}" text-anchor=end>'
        f"{escape(_number(top_label) + unit)}</text>",
        f'<text x="{_PAD_LEFT - 3}" y="{_PAD_TOP + plot_h}" text-anchor=end>'
        f"{escape(_number(bottom_label) + unit)}</text>",
        f'<text x="{_PAD_LEFT}" y="{HEIGHT - 2}">{escape(_clock(start))}</text>',
        f'<text x="{WIDTH - _PAD_RIGHT}" y="{HEIGHT - 2}" text-anchor=end>'
        f"{escape(_clock(end))}</text>",
    ]
    for index, line in enumerate(series):
        colour, dash = _STYLES[index % len(_STYLES)]
        points = [(p[0], p[1]) for p in line.points if math.isfinite(p[1]) and start <= p[0] <= end]
        if not points:
            continue
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(points) == 1:
            x, y = xy(*points[0]).split(",")
            parts.append(f'<circle cx="{x}" cy="{y}" r="2" fill="{colour}"/>')
            continue
        path = " ".join(xy(t, v) for t, v in points)
        parts.append(
            f'<polyline points="{path}" fill=none stroke="{colour}" stroke-width="1.6"{dash_attr}/>'
        )
    parts.append("</svg>")
    if len(series) > 1:
        parts.append("<ul class=legend aria-hidden=true>")
        for index, line in enumerate(series):
            colour, dash = _STYLES[index % len(_STYLES)]
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(
                f'<li><svg width="22" height="8"><line x1="0" y1="4" x2="22" y2="4" '
                f'stroke="{colour}" stroke-width="2"{dash_attr}/></svg>{escape(line.name)}</li>'
            )
        parts.append("</ul>")
    return "".join(parts)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M")
