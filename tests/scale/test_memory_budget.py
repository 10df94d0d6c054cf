"""Each per-target structure stays within its byte budget with every buffer full.

Bytes are counted by tracemalloc (allocation sizes, not time), as the slope
between two target counts, with the state pre-filled through the same code
path as live runs (bench/memory.py). A structure that grows past its budget
fails here before it reaches a 10,000-target daemon.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest
from bench import memory

from outagewatch.history import HISTORY_WINDOW, REPORT_BUCKET, TTFT_SLOT, StatusHistory
from outagewatch.observations import ChatStats, ProbeResult


@pytest.fixture(scope="module")
def measured() -> dict[str, memory.Measured]:
    return {m.name: m for m in memory.measure_structures(small=100, large=600)}


@pytest.mark.parametrize("name", sorted(memory.BUDGETS))
def test_each_per_target_structure_is_within_its_budget(
    measured: dict[str, memory.Measured], name: str
) -> None:
    figure = measured[name]
    assert 0 < figure.bytes_per_target <= figure.budget, (
        f"{name}: {figure.bytes_per_target:,.0f} bytes per target, budget {figure.budget:,}"
    )


def test_ten_thousand_targets_fit_the_goal_with_the_fixed_part(
    measured: dict[str, memory.Measured],
) -> None:
    # The fixed part (interpreter, imports, web app, store) was 71-75 MB of RSS
    # for a pre-filled 10-probe daemon (docs/benchmarks.md); count 100 MB.
    total = memory.steady_state_bytes(memory.GOAL_TARGETS, 100e6, list(measured.values()))
    assert total < memory.GOAL_BYTES


def test_chart_history_does_not_grow_past_its_window() -> None:
    """Twice the window of runs costs no more than one window: rings, not lists."""
    # Mid-bucket, so the last minute's run falls in the bucket ``now`` is in whatever
    # the wall clock says.
    now = (time.time() // REPORT_BUCKET) * REPORT_BUCKET + REPORT_BUCKET / 2

    def fed(hours: float) -> tuple[int, StatusHistory]:
        history = StatusHistory()
        tracemalloc.start()
        try:
            start = now - hours * 3600
            for minute in range(int(hours * 60)):
                when = start + minute * TTFT_SLOT
                for i in range(20):
                    stats = ChatStats("ok", ttft_seconds=0.5)
                    chat = ProbeResult("s", f"c{i}", "anthropic", when, True, 1.0, chat=stats)
                    history.probe(chat)
                    history.probe(ProbeResult("s", f"h{i}", "http", when, minute % 9 > 0, 0.1))
            return tracemalloc.get_traced_memory()[0], history
        finally:
            tracemalloc.stop()

    one, history = fed(HISTORY_WINDOW / 3600)
    two, _ = fed(2 * HISTORY_WINDOW / 3600)
    assert two <= one * 1.05
    success = history.success_percent("s", now - HISTORY_WINDOW)
    # Every 5-minute bucket of 6 h, and the one the window starts in.
    assert len(success) == HISTORY_WINDOW // REPORT_BUCKET + 1
    assert len(history.ttft_points("s", now - HISTORY_WINDOW)["c0"]) == HISTORY_WINDOW // 60
