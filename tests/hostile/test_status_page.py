"""Hostile text on the status page: display names, unknown reasons, failure codes and
details, event texts. The page still renders, adds no element or attribute of its own
making, and the summary stays plain JSON-ready data."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.views import Event, ServiceStatus, StatusDocument, StatusQuery, summary
from outagewatch.web.status import render_status_page
from tests.web.test_status_page_3am import NIGHT, _judged


class _Shape(HTMLParser):
    """Every (tag, attribute names) pair of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, tuple[str, ...]]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add((tag, tuple(sorted(name for name, _ in attrs))))


def _shape(page: str) -> set[tuple[str, tuple[str, ...]]]:
    parser = _Shape()
    parser.feed(page)
    parser.close()
    return parser.seen


def _night() -> tuple[StatusDocument, float]:
    pipeline, config, clock = _judged(NIGHT)
    return StatusQuery(pipeline.state).document(config, clock.time()), clock.time()


def _with_probe(service: ServiceStatus, **changes: Any) -> ServiceStatus:
    """The service with its first probe's row changed (the probe lens's own fragment)."""
    parts = []
    for part in service.lenses:
        if part.key == "probes":
            rows = copy.deepcopy(part.fragment)
            rows[0].update(changes)
            part = replace(part, fragment=rows)
        parts.append(part)
    return replace(service, lenses=tuple(parts))


NIGHT_DOCUMENT, NOW = _night()
# Tags and attributes the page makes itself, whatever the text; a probe row of each kind.
BASE = replace(
    NIGHT_DOCUMENT,
    services=tuple(
        _with_probe(s, result="down", reason="http_status", status_code=503, detail="x")
        for s in NIGHT_DOCUMENT.services
    ),
    events=(Event(NIGHT_DOCUMENT.time, "claude", "state", "t"),),
)
BASE_SHAPE = _shape(render_status_page(BASE, NOW, 30))

hostile = st.text(max_size=60) | st.sampled_from(
    ["<script>alert(1)</script>", '"><img src=x onerror=1>', "&amp;", "\u202e", "]]>", "{x}"]
)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    titles=st.lists(hostile, min_size=9, max_size=9),
    reasons=st.lists(hostile, max_size=4),
    failure=st.tuples(hostile, st.none() | hostile, st.none() | st.integers(0, 999), hostile),
    event=hostile,
)
def test_hostile_text_never_shapes_the_page(
    titles: list[str],
    reasons: list[str],
    failure: tuple[str, str | None, int | None, str],
    event: str,
) -> None:
    reason, sub_reason, code, detail = failure
    services = []
    for service, title in zip(BASE.services, titles, strict=True):
        service = _with_probe(
            replace(service, title=title),
            reason=reason,
            sub_reason=sub_reason,
            status_code=code,
            detail=detail,
        )
        if service.service == "grok":
            disruption = replace(service.disruption, reasons=tuple(reasons))
            service = replace(service, disruption=disruption)
        services.append(service)
    document = replace(
        BASE,
        services=tuple(services),
        summary=summary(services),
        events=(replace(BASE.events[0], text=event),),
    )
    json.dumps(document.json())
    page = render_status_page(document, NOW, 30)
    assert _shape(page) <= BASE_SHAPE
    assert document.summary.text.startswith("2 of 9 disrupted")
