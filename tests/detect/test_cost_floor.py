"""bench/cost_floor.py: each variant makes its part free inside the block and only there."""

from __future__ import annotations

from bench import cost_floor

from outagewatch.detect import alarms
from outagewatch.detect.novelty import ContextNovelty, _SumIndex
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import detector_for
from outagewatch.detect.synthetic import simulate


def verdicts(signal: str) -> list[tuple[bool, bool, float]]:
    """(started, active, score) of each point of two simulated days."""
    det = detector_for(signal, DetectionSettings())
    rows = simulate(2, 100.0, seed=3000).rows
    return [(v.started, v.active, v.score) for v in (det.update(ts, x) for ts, x in rows)]


def test_each_variant_replaces_its_part_and_restores_it() -> None:
    originals = {
        (ContextNovelty, "ratio"): ContextNovelty.ratio,
        (ContextNovelty, "learn"): ContextNovelty.learn,
        (_SumIndex, "nearest"): _SumIndex.nearest,
        (alarms, "count_z"): alarms.count_z,
    }
    for _, _, parts in cost_floor.VARIANTS:
        assert all((owner, name) in originals for owner, name, _ in parts)
    before = verdicts("reports")
    with cost_floor.replaced(alarms, "count_z", lambda value, mean, dispersion: 1.0):
        assert alarms.count_z(50.0, 1.0, 0.1) == 1.0
    try:
        with cost_floor.replaced(_SumIndex, "nearest", None):
            raise RuntimeError("inside")
    except RuntimeError:
        pass
    for (owner, name), original in originals.items():
        assert getattr(owner, name) is original
    assert verdicts("reports") == before


def test_cost_is_cpu_microseconds_per_point() -> None:
    median, low = cost_floor.cost("latency", runs=1)
    assert 0 < low <= median < 10_000
