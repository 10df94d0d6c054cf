"""Verdict hash: a digest of every decision the detector makes on fixed series.

A speed-up of the detector must not change a decision. This runs every
`BACKTEST_SIGNALS` kind over fixed series and hashes, per point, the alert
decision (`started`) and the held state (`active`); halfway through each
series the detector is saved to JSON and restored, so the saved state must
carry everything a decision depends on.

- `generic`: all 28 files of ../shared/data/nab (every category);
- `reports`: NAB's realTweets (the files it is scored on) and synthetic
  report streams with outages and quiet ones, at three volumes;
- `latency`, `failure_ratio`, `rank`: the detector-cost stream in their units.

`EXPECTED` holds the digests of the detector as committed; `check()` says which
part differs. Run: PYTHONPATH=daemon python bench/verdict_hash.py
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row
from outagewatch.detect.backtest import read_series
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.spike import SpikeDetector, detector_for
from outagewatch.detect.synthetic import simulate

REPO = Path(__file__).resolve().parent.parent
NAB_CATEGORIES = ("realTweets", "realKnownCause", "artificialWithAnomaly", "artificialNoAnomaly")

# Digests of the decisions before the issue 19 cost work; every optimisation keeps them.
EXPECTED = {
    "generic/nab": "4380eb42e6b64262",
    "reports/nab-realTweets": "cb3757332cd39c79",
    "reports/synthetic": "66a9e6c416930e46",
    "latency/cost-stream": "130a427031d7ca37",
    "failure_ratio/cost-stream": "903d8b4ea812429f",
    "rank/cost-stream": "566029e1e494175e",
}

# The cost stream's values in each signal's unit (as bench_detection.COST_VALUES).
UNITS: dict[str, Callable[[float], float]] = {
    "latency": lambda count: 0.2 + count / 1000,
    "failure_ratio": lambda count: min(1.0, count / 500),
    "rank": lambda count: 1.0 + count,
}


def default_nab_dir() -> Path:
    """$OUTAGEWATCH_NAB_DIR, or NAB beside the repository in shared/data."""
    return Path(os.environ.get("OUTAGEWATCH_NAB_DIR", REPO.parent / "shared" / "data" / "nab"))


def hash_series(
    digest: hashlib._Hash, signal: str, rows: list[tuple[float, float]], settings: DetectionSettings
) -> None:
    """Feed `rows` to a fresh detector, saved and restored halfway; hash each decision."""
    det = detector_for(signal, settings)
    half = len(rows) // 2
    bits = bytearray()
    for i, (ts, value) in enumerate(rows):
        if i == half:
            state = json.loads(json.dumps(det.to_state()))
            det = SpikeDetector.from_state(state, settings)
        verdict = det.update(ts, value)
        bits.append(verdict.started | verdict.active << 1)
    digest.update(signal.encode())
    digest.update(bytes(bits))


def nab_files(nab_dir: Path, categories: Iterable[str]) -> list[list[tuple[float, float]]]:
    """The (timestamp, value) rows of every NAB file of `categories`, in name order."""
    series = []
    for category in categories:
        for path in sorted((nab_dir / "data" / category).glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as stream:
                series.append([(ts, value) for _, ts, value in read_series(stream)])
    return series


def synthetic_streams() -> list[list[tuple[float, float]]]:
    """Report streams with outages (8 weeks) and quiet ones (6 weeks) at three volumes."""
    streams = []
    for mean in (2.0, 20.0, 500.0):
        streams.append(simulate(8, mean, seed=1000).rows)
        streams.append(simulate(6, mean, seed=2000, outages_from_s=None).rows)
    return streams


def digests(nab_dir: Path) -> dict[str, str]:
    """The digest of each part of EXPECTED, with default settings."""
    settings = DetectionSettings()
    parts: dict[str, list[tuple[str, list[list[tuple[float, float]]]]]] = {
        "generic/nab": [("generic", nab_files(nab_dir, NAB_CATEGORIES))],
        "reports/nab-realTweets": [("reports", nab_files(nab_dir, ("realTweets",)))],
        "reports/synthetic": [("reports", synthetic_streams())],
    }
    cost_stream = simulate(4, 100.0, seed=3000).rows
    for signal, unit in UNITS.items():
        rows = [(ts, unit(v)) for ts, v in cost_stream]
        parts[f"{signal}/cost-stream"] = [(signal, [rows])]
    result = {}
    for name, runs in parts.items():
        digest = hashlib.sha256()
        for signal, series in runs:
            if not series:
                raise FileNotFoundError(f"{name}: no series (NAB under {nab_dir}?)")
            for rows in series:
                hash_series(digest, signal, rows, settings)
        result[name] = digest.hexdigest()[:16]
    return result


def check(nab_dir: Path) -> list[str]:
    """The parts whose digest differs from EXPECTED (empty: every decision is unchanged)."""
    got = digests(nab_dir)
    return [
        f"{name}: {got[name]} != expected {want}"
        for name, want in EXPECTED.items()
        if got[name] != want
    ]


def verdict_row(nab_dir: Path) -> Row:
    """Bench row: every decision on the fixed series is the committed one."""
    differs = check(nab_dir)
    return Row(
        f"detector decisions unchanged (verdict hash, {len(EXPECTED)} parts)",
        "identical" if not differs else "; ".join(differs),
        "none",
        "-",
        "-",
        "identical",
        not differs,
    )


def main() -> int:
    """Print the digests and whether they match."""
    got = digests(default_nab_dir())
    for name, value in got.items():
        print(f"{name:28} {value} {'ok' if value == EXPECTED[name] else 'DIFFERS'}")
    return 0 if all(got[n] == EXPECTED[n] for n in EXPECTED) else 1


if __name__ == "__main__":
    raise SystemExit(main())
