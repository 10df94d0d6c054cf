"""A fresh install with imported history: what a new user has before the first start.

Writes weeks of report history with a daily cycle (the synthetic stream's
baseline: peak mid-afternoon, quieter weekends, overdispersed counts) as the
CSV ``outagewatch reports import`` reads, and imports it through the CLI into a
store that has no detector state: the import itself replays the history
through the report detectors (detect/replay.py), as it does for a user.

For the time-to-page bench: call ``prepare_fresh_install(config, csv)``
before starting the daemon, with ``storage.path`` of ``config`` pointing at a
file that does not exist yet. Run alone, it prints how long the import and
replay take:

    PYTHONPATH=daemon python -m bench.fresh_install [--weeks 4] [--mean 6.5] [--services 1]
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from outagewatch.detect.synthetic import STEP_S, WEEK_S, baseline_at, overdispersed_count

PROBLEMS = ("app", "website", "login", "api", "slow", "other")


def history_rows(
    services: Iterable[str],
    end: float,
    weeks: float = 4.0,
    mean: float = 6.5,
    seed: int = 1,
    shift: float = 0.0,
) -> list[tuple[float, str, str]]:
    """(time, service, problem) of ``weeks`` of reports before ``end``, in time order.

    ``mean`` is the usual count per 5 minutes averaged over the day; each 5-minute
    slot draws its count around the daily cycle and spreads it over the slot.
    ``shift``: the users' week runs this many seconds ahead of the clock (users in
    another time zone), so a bench can meet a busy hour whatever the time.
    """
    rng = random.Random(seed)
    last = end - end % STEP_S  # whole slots only: the one holding ``end`` is live
    rows = []
    for service in services:
        ts = last - weeks * WEEK_S
        while ts < last:
            for _ in range(overdispersed_count(rng, baseline_at(ts + shift, mean), 5.0)):
                rows.append((ts + rng.uniform(0, STEP_S), service, rng.choice(PROBLEMS)))
            ts += STEP_S
    rows.sort()
    return rows


def write_history_csv(path: Path, rows: Iterable[tuple[float, str, str]]) -> int:
    """Rows as ``timestamp,service,problem`` (ISO 8601, milliseconds); returns how many."""
    count = 0
    with path.open("w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(("timestamp", "service", "problem"))
        for when, service, problem in rows:
            stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
            out.writerow((stamp.replace("+00:00", "Z"), service, problem))
            count += 1
    return count


@dataclass(frozen=True)
class Imported:
    """What ``reports import`` said and how long it took (import and replay)."""

    seconds: float
    output: str


def prepare_fresh_install(
    config: Path, history_csv: Path, storage_path: Path | None = None
) -> Imported:
    """``outagewatch reports import`` of ``history_csv`` into the config's (new) store.

    Raises RuntimeError with the CLI's output when the import fails.
    """
    command = [sys.executable, "-m", "outagewatch.cli", "reports", "import"]
    command += ["--config.file", str(config), str(history_csv)]
    if storage_path is not None:
        command[5:5] = ["--storage.path", str(storage_path)]
    began = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"reports import exited {done.returncode}: {done.stdout}{done.stderr}")
    return Imported(time.monotonic() - began, done.stdout + done.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=float, default=4.0)
    parser.add_argument("--mean", type=float, default=6.5, help="usual reports per 5 minutes")
    parser.add_argument("--services", type=int, default=1)
    args = parser.parse_args(argv)
    names = [f"service{i}" for i in range(args.services)]
    with tempfile.TemporaryDirectory(prefix="ow-fresh-") as tmp:
        root = Path(tmp)
        config = root / "config.yml"
        services = "".join(f"  {name}: {{}}\n" for name in names)
        config.write_text(f"services:\n{services}storage:\n  path: {root / 'o.db'}\n")
        rows = history_rows(names, time.time(), args.weeks, args.mean)
        write_history_csv(root / "history.csv", rows)
        imported = prepare_fresh_install(config, root / "history.csv")
    print(imported.output.strip())
    print(
        f"{len(rows)} reports, {args.services} services: import + replay {imported.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
