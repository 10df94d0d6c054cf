"""Benchmark the spike detector's real yes/no decisions.

1. NAB: every file of each category under $OUTAGEWATCH_NAB_DIR (default
   ../shared/data/nab from the repository root), default settings, scored with
   bench/nab_score.py for the three profiles on backtest's `alert` column (the
   alert decisions: spike onsets). Twitter volumes run as `reports` (counts,
   upward); the other categories as `generic` (two-sided, no count floors: they
   are arbitrary metrics whose anomalies go either way).
2. Synthetic report streams: catch rate and delay of injected outages (2-5 days
   apart), and false alarms per quiet week.

Run: PYTHONPATH=daemon python bench/bench_detection.py
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row
from nab_score import PROFILES, normalised, probation_rows, score_file, window_rows
from outagewatch.detect import compiled
from outagewatch.detect.backtest import parse_timestamp, read_series, run_backtest
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import BACKTEST_SIGNALS, detector_for
from outagewatch.detect.synthetic import WEEK_S, baseline_at, simulate
from verdict_hash import verdict_row

REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ("realTweets", "realKnownCause", "artificialWithAnomaly", "artificialNoAnomaly")


def signal_for(category: str) -> str:
    """Which daemon signal a NAB category stands in for."""
    return "reports" if category == "realTweets" else "generic"


@dataclass(frozen=True, slots=True)
class FileResult:
    """One NAB file's scores and counts."""

    category: str
    name: str
    windows: int
    detected: int
    false_alarms: int
    raw: dict[str, float]


def score_nab_file(args: tuple[Path, str, list[list[str]], DetectionSettings]) -> FileResult:
    """Backtest one NAB file with the given settings; score its alert column per profile."""
    path, category, labelled, settings = args
    with path.open(newline="", encoding="utf-8") as stream:
        series = read_series(stream)
    rows = [(ts, value) for _, ts, value in series]
    alerts = [alert for *_, alert in run_backtest(signal_for(category), rows, settings)]
    stamps = [ts for ts, _ in rows]
    windows = window_rows(stamps, [(parse_timestamp(a), parse_timestamp(b)) for a, b in labelled])
    probation = probation_rows(len(alerts))
    flagged = [i for i, a in enumerate(alerts) if a and i >= probation]
    detected = sum(1 for lo, hi in windows if any(lo <= i <= hi for i in flagged))
    outside = sum(1 for i in flagged if not any(lo <= i <= hi for lo, hi in windows))
    raw = {name: score_file(alerts, windows, profile) for name, profile in PROFILES.items()}
    return FileResult(category, path.name, len(windows), detected, outside, raw)


def score_nab(nab_dir: Path) -> list[FileResult]:
    """Backtest and score every NAB file of CATEGORIES, two processes at a time."""
    labels = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    jobs = [
        (path, category, labels[f"{category}/{path.name}"], DetectionSettings())
        for category in CATEGORIES
        for path in sorted((nab_dir / "data" / category).glob("*.csv"))
    ]
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(score_nab_file, jobs))


# The published NAB scoreboard, standard profile (docs/DETECTION.md in shared/).
PUBLISHED = {"Numenta HTM": 70.1, "Twitter ADVec": 47.1, "Etsy Skyline": 35.7}


def measure(nab_dir: Path | None = None) -> list[Row]:
    """The NAB standard score over every file against published detectors', and the cost."""
    nab_dir = nab_dir or default_nab_dir()
    results = score_nab(nab_dir)
    windows = sum(r.windows for r in results)
    profile = PROFILES["standard"]
    score = normalised(sum(r.raw["standard"] for r in results), windows, profile)
    return (
        cost_rows()
        + [verdict_row(nab_dir)]
        + [
            Row(
                f"NAB standard score ({len(results)} files, {windows} windows; deterministic)",
                f"{score:.1f}",
                f"{name} (published)",
                f"{published:.1f}",
                f"{score / published:.2f}x",
                ">= 70",
                score >= 70,
            )
            for name, published in PUBLISHED.items()
        ]
    )


# Each signal's values from one simulated report stream, in that signal's unit.
COST_VALUES = {
    "reports": lambda count: count,
    "latency": lambda count: 0.2 + count / 1000,
    "failure_ratio": lambda count: min(1.0, count / 500),
    "rank": lambda count: 1.0 + count,
    "generic": lambda count: count,
}


def detector_cost(weeks: int = 4, runs: int = 3) -> dict[str, list[float]]:
    """CPU µs per update() per signal: `runs` fresh detectors over `weeks` of 5-minute points."""
    stream = simulate(weeks, 100.0, seed=3000)
    costs: dict[str, list[float]] = {}
    for signal in BACKTEST_SIGNALS:
        rows = [(ts, COST_VALUES[signal](v)) for ts, v in stream.rows]
        costs[signal] = []
        for _ in range(runs):
            det = detector_for(signal, DetectionSettings())
            started = time.process_time()
            for ts, v in rows:
                det.update(ts, v)
            costs[signal].append(1e6 * (time.process_time() - started) / len(rows))
    return costs


def cost_rows() -> list[Row]:
    """Bench rows: the detector's CPU cost per point, per signal (median of 3 runs)."""
    build = "compiled" if compiled() else "interpreted"
    return [
        Row(
            f"detector cost, µs CPU per point ({signal}, {build})",
            f"{statistics.median(us):.1f} ({min(us):.1f}-{max(us):.1f})",
            "none",
            "-",
            "-",
            "<= 20",
            statistics.median(us) <= 20,
        )
        for signal, us in detector_cost().items()
    ]


def nab_table(nab_dir: Path) -> None:
    """Print the NAB scores per category and profile, and over all categories."""
    results = score_nab(nab_dir)
    by_category: dict[str, list[FileResult]] = defaultdict(list)
    for result in results:
        by_category[result.category].append(result)
    print(f"NAB ({nab_dir}), default DetectionSettings, backtest alert column")
    print_scores(by_category, results)
    print("hit: windows with an alert; FP: alerts outside windows (after probation).")
    print("artificialNoAnomaly has no windows: its cell is the raw false-positive cost.")
    print()
    print("per file (standard): windows hit/total, alerts outside windows, raw score")
    for r in results:
        print(
            f"  {r.category + '/' + r.name:58} {r.detected}/{r.windows}  "
            f"{r.false_alarms:4d}  {r.raw['standard']:+.2f}"
        )


def print_scores(by_category: dict[str, list[FileResult]], results: list[FileResult]) -> None:
    """One row per category and one for all files; one column per profile."""
    names = list(PROFILES)
    print(
        f"{'category':24} {'files':>5} {'windows':>7} {'hit':>4} {'FP':>5}  "
        + "  ".join(f"{n:>13}" for n in names)
    )
    groups = [(c, by_category[c]) for c in CATEGORIES] + [("ALL", results)]
    for label, group in groups:
        n_windows = sum(r.windows for r in group)
        cells = []
        for name in names:
            raw = sum(r.raw[name] for r in group)
            score = normalised(raw, n_windows, PROFILES[name])
            cells.append(f"raw {raw:+8.2f}" if math.isnan(score) else f"{score:13.1f}")
        print(
            f"{label:24} {len(group):5d} {n_windows:7d} {sum(r.detected for r in group):4d} "
            f"{sum(r.false_alarms for r in group):5d}  " + "  ".join(f"{c:>13}" for c in cells)
        )


def synthetic_figures() -> None:
    """Print outage catch rates and quiet-week false alarms on synthetic report streams."""
    settings = DetectionSettings()
    within = 600.0
    print()
    print(
        "Synthetic report streams (5-minute gamma-Poisson counts, diurnal + weekly cycle;\n"
        "outages 2x-50x for 5-120 min, 2-5 days apart; 16 streams of 8 weeks per volume,\n"
        "outages from week 3; false alarms over 4 quiet streams of 6 weeks per volume)"
    )
    print(
        f"{'mean/5min':>9} {'outages':>7} {'>=5x':>5} {'caught<=10m':>11} "
        f"{'2-5x caught':>11} {'any catch':>9} {'median delay':>12} {'FA/quiet wk':>11}"
    )
    totals: dict[str, int] = defaultdict(int)
    for mean in (2.0, 5.0, 20.0, 100.0, 500.0):
        big = big_fast = small = small_caught = caught = 0
        delays: list[float] = []
        for seed in range(16):
            stream = simulate(8, mean, seed=1000 + seed)
            det = detector_for("reports", settings)
            starts = [ts for ts, v in stream.rows if det.update(ts, v).started]
            for outage in stream.outages:
                hit = [t - outage.start for t in starts if outage.start <= t < outage.end + 600]
                if hit:
                    caught += 1
                    delays.append(hit[0])
                fast = bool(hit) and hit[0] <= within
                if outage.multiplier >= 5:
                    big += 1
                    big_fast += fast
                else:
                    small += 1
                    small_caught += bool(hit)
        quiet_alarms = quiet_weeks = 0
        for seed in range(4):
            stream = simulate(6, mean, seed=2000 + seed, outages_from_s=None)
            det = detector_for("reports", settings)
            quiet_alarms += sum(det.update(ts, v).started for ts, v in stream.rows)
            quiet_weeks += 6
        n = big + small
        delays.sort()
        median = delays[len(delays) // 2] / 60 if delays else math.nan
        print(
            f"{mean:9.0f} {n:7d} {big:5d} {100 * big_fast / max(big, 1):10.1f}% "
            f"{100 * small_caught / max(small, 1):10.1f}% {100 * caught / max(n, 1):8.1f}% "
            f"{median:10.1f} m {quiet_alarms / quiet_weeks:11.2f}"
        )
        for key, value in (
            ("big", big),
            ("big_fast", big_fast),
            ("qa", quiet_alarms),
            ("qw", quiet_weeks),
        ):
            totals[key] += value
    print(
        f"all volumes: >=5x caught within 10 min {totals['big_fast']}/{totals['big']} "
        f"({100 * totals['big_fast'] / max(totals['big'], 1):.1f} %), "
        f"false alarms per quiet week {totals['qa'] / totals['qw']:.2f}"
    )
    print(
        f"(baseline at a weekday 15:00 is {baseline_at(WEEK_S * 0 + 15 * 3600, 1.0):.2f}x the "
        "mean; weekends 0.6x)"
    )


def default_nab_dir() -> Path:
    """$OUTAGEWATCH_NAB_DIR, or NAB beside the repository in shared/data."""
    return Path(os.environ.get("OUTAGEWATCH_NAB_DIR", REPO.parent / "shared" / "data" / "nab"))


def main() -> int:
    """Print the NAB table and the synthetic figures."""
    nab_table(default_nab_dir())
    synthetic_figures()
    print()
    for signal, us in detector_cost().items():
        print(
            f"detector cost {signal:14} {statistics.median(us):5.1f} µs CPU per point"
            f" ({'compiled' if compiled() else 'interpreted'})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
