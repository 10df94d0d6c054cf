"""A detector state saved before the detector was split (issue 19) restores and goes on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import SpikeDetector

# Saved by the code before issue 19's split (commit 405cdea): three days of a
# quiet synthetic report stream through each kind (rank 50 + count, latency
# 0.5 s + count / 100).
SAVED = Path(__file__).parent / "data" / "spike_states_v4.json"
VALUE = {
    "reports": lambda c: c,
    "generic": lambda c: c,
    "rank": lambda c: 50.0 + c,
    "latency": lambda c: 0.5 + c / 100.0,
}
# An outage in each kind's own unit: reports x10, rank to the top, latency x10.
OUTAGE = {"reports": 200.0, "generic": 200.0, "rank": 1.0, "latency": 5.0}


@pytest.mark.parametrize("kind", sorted(VALUE))
def test_a_state_saved_before_the_split_restores_and_still_alerts(kind: str) -> None:
    state = json.loads(SAVED.read_text())[kind]
    settings = DetectionSettings()
    det = SpikeDetector.from_state(state, settings)
    # Restoring changed nothing: the same keys and values come back out.
    assert det.to_state() == state
    t = det.last_ts
    for i in range(1, 13):
        verdict = det.update(t + 300 * i, VALUE[kind](20.0))
        assert math.isfinite(verdict.score) and not verdict.started
    alert = det.update(t + 300 * 13, OUTAGE[kind])
    assert alert.started and alert.active
