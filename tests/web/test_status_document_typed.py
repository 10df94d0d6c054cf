"""The typed status document serialises to the same JSON as before it was typed.

``status_document_golden.json`` was captured from the dict-built document (the
commit before the typed read views) for these fixed, busy states: a service
fed an hour of probes, reports, a chart and a major incident, judged, with a
failing source, a lead; nine services judged at 3 a.m.; a flapping probe under a state
change. The typed document must give the same keys, order and values, and the
same page, byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from outagewatch.clock import FakeClock
from outagewatch.config import parse_config
from outagewatch.detect.disruption import Transition
from outagewatch.detect.tracker import IncidentLead
from outagewatch.observations import ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.views import RECENT_EVENTS, StatusQuery
from outagewatch.web.status import render_status_page
from tests.web.test_status_page import CONFIG, _fed_pipeline
from tests.web.test_status_page_3am import NIGHT, _config, _judged

GOLDEN = Path(__file__).with_name("status_document_golden.json")


def _busy() -> dict[str, Any]:
    pipeline, clock = _fed_pipeline()
    config = parse_config(CONFIG)
    pipeline.configure_reports(config)
    pipeline.configure_detection(config, {"claude/api", "claude/web"})
    pipeline.record_run("claude/web", "http", 0.2, error_reason="http_status", error_detail="503")
    for _ in range(3):
        clock.advance(60)
        list(pipeline.detect_steps())
    tracker = pipeline.state.disruption
    start = clock.time() - 900
    tracker.leads[("claude", "main", "i1")] = IncidentLead(
        "claude", "main", "i1", start, "early", 240.0
    )
    status = tracker.status["claude"]
    tracker.status["claude"] = replace(status, reasons=status.reasons | {"official_fetch_failing"})
    return _document(config, pipeline, clock.time())


def _night() -> dict[str, Any]:
    pipeline, config, clock = _judged(NIGHT)
    return _document(config, pipeline, clock.time())


def _flapping() -> dict[str, Any]:
    clock = FakeClock()
    config = _config({"claude": "Claude"})
    pipeline = Pipeline(clock)
    pipeline.configure_detection(config, set())
    pipeline.state.disruption.history["claude"].append(
        Transition("claude", clock.time(), "ok", "disrupted", ("probes_failing",))
    )
    for run in range(2 * RECENT_EVENTS):
        clock.advance(30)
        ok = run % 2 == 0
        pipeline.ingest(
            [ProbeResult("claude", "web", "http", clock.time(), ok, 0.1, None if ok else "timeout")]
        )
    return _document(config, pipeline, clock.time())


def _document(config: Any, pipeline: Pipeline, now: float) -> dict[str, Any]:
    """The JSON of /api/v1/status and the page, both from one document."""
    document = StatusQuery(pipeline.state).document(config, now, "/base")
    return {"json": document.json(), "page": render_status_page(document, now, 30, "/base")}


def documents() -> dict[str, Any]:
    return {"busy": _busy(), "night": _night(), "flapping": _flapping()}


def test_the_typed_document_serialises_and_renders_as_the_dict_one_did() -> None:
    golden = GOLDEN.read_text(encoding="utf-8")
    assert json.dumps(documents(), indent=1) + "\n" == golden


if __name__ == "__main__":  # regenerate: only for an intended change of the output
    GOLDEN.write_text(json.dumps(documents(), indent=1) + "\n", encoding="utf-8")
