"""Where the detector's time goes: its cost per point with one part made free.

A diagnostic for issue 19, not a benchmark row. Each variant runs the
detector-cost stream (`detector_cost`'s 4 simulated weeks of 5-minute
points) with one part answering a constant at once, so the difference from
the full detector is that part's cost and what is left is the floor no
speed-up of that part can go below. The variants decide differently (the
answers are constants): their figures are costs, never verdicts.

- `generic`: the nearest-context search free (`search free`), and the whole
  contextual novelty free (`novelty free`: no search, no reservoir);
- `reports`: the exact count tail of the scan free (`tail free`).

Run: PYTHONPATH=daemon python bench/cost_floor.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_detection import COST_VALUES
from outagewatch.detect import alarms
from outagewatch.detect.novelty import ContextNovelty, _SumIndex
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import detector_for
from outagewatch.detect.synthetic import simulate


@contextmanager
def replaced(owner: object, name: str, value: object) -> Iterator[None]:
    """`owner.name` is `value` inside the block, the original again after it."""
    original = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


def cost(signal: str, runs: int = 5) -> tuple[float, float]:
    """(median, min) CPU µs per update() over the cost stream, `runs` fresh detectors."""
    rows = [(ts, COST_VALUES[signal](v)) for ts, v in simulate(4, 100.0, seed=3000).rows]
    us = []
    for _ in range(runs):
        det = detector_for(signal, DetectionSettings())
        started = time.process_time()
        for ts, v in rows:
            det.update(ts, v)
        us.append(1e6 * (time.process_time() - started) / len(rows))
    return statistics.median(us), min(us)


# (signal, variant, the (owner, attribute, constant answer) made free).
VARIANTS: list[tuple[str, str, list[tuple[object, str, object]]]] = [
    (
        "generic",
        "search free",
        [(_SumIndex, "nearest", lambda self, current, seq, hint: (1.0, seq))],
    ),
    (
        "generic",
        "novelty free",
        [
            (ContextNovelty, "ratio", lambda self, value, span: (0.0, 0.0)),
            (ContextNovelty, "learn", lambda self, value, dist, normal: None),
        ],
    ),
    ("reports", "tail free", [(alarms, "count_z", lambda value, mean, dispersion: 1.0)]),
]


def main() -> int:
    """Print the full detector's cost and each variant's, per signal."""
    print(f"load average {os.getloadavg()[0]:.1f}; CPU µs per point, median (min) of 5")
    for signal in ("generic", "reports"):
        median, low = cost(signal)
        print(f"{signal:8} full          {median:5.1f} ({low:.1f})")
        for name_signal, name, parts in VARIANTS:
            if name_signal != signal:
                continue
            with ExitStack() as stack:
                for owner, attribute, value in parts:
                    stack.enter_context(replaced(owner, attribute, value))
                median, low = cost(signal)
            print(f"{signal:8} {name:13} {median:5.1f} ({low:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
