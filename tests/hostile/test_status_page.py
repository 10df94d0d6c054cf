"""Hostile text on the status page: display names, unknown reasons, failure codes and
details, event texts. The page still renders, adds no element or attribute of its own
making, and the summary stays plain JSON-ready data."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.web.status import render_status_page, status_document, summary
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


def _night() -> tuple[dict[str, Any], float]:
    pipeline, config, clock = _judged(NIGHT)
    return status_document(config, pipeline.state, clock.time()), clock.time()


BASE, NOW = _night()
# Tags and attributes the page makes itself, whatever the text; a probe row of each kind.
for _service in BASE["services"]:
    _service["probes"][0].update(result="down", reason="http_status", status_code=503, detail="x")
BASE["events"] = [{"time": BASE["time"], "service": "claude", "kind": "state", "text": "t"}]
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
    document = copy.deepcopy(BASE)
    for service, title in zip(document["services"], titles, strict=True):
        service["title"] = title
        reason, sub_reason, code, detail = failure
        service["probes"][0].update(
            reason=reason, sub_reason=sub_reason, status_code=code, detail=detail
        )
    grok = next(s for s in document["services"] if s["service"] == "grok")
    grok["disruption"]["reasons"] = reasons
    document["events"][0]["text"] = event
    document["summary"] = summary(document["services"])
    json.dumps(document["summary"])
    page = render_status_page(document, NOW, 30)
    assert _shape(page) <= BASE_SHAPE
    assert document["summary"]["text"].startswith("2 of 9 disrupted")
