"""Replay a recorded series through a detector: CSV in, verdicts per row out."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from outagewatch.clock import parse_timestamp
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.signals import build_detector


def read_series(stream: TextIO) -> list[tuple[str, float, float]]:
    """Rows of a `timestamp,value` CSV as (timestamp text, unix seconds, value)."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
        raise ValueError("expected a CSV header 'timestamp,value'")
    rows = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            rows.append((row[0], parse_timestamp(row[0]), float(row[1])))
        except (ValueError, IndexError) as exc:
            raise ValueError(f"line {line_no}: {exc}") from exc
    return rows


def run_backtest(
    signal: str, rows: Iterable[tuple[float, float]], settings: DetectionSettings
) -> Iterator[tuple[float, float, float, int]]:
    """Feed (timestamp, value) rows to a fresh detector; yield (ts, value, score, alert).

    `alert` is the daemon's alert decision as 0 or 1: 1 only on the row where a
    spike starts (`SpikeVerdict.started`, what pages and what
    `outagewatch_spikes_total` counts), not on every row the spike stays active
    (`SpikeVerdict.active`, the held state exported as a gauge). Scoring the
    onsets is scoring the decisions the daemon acts on.
    """
    detector = build_detector(signal, settings)
    for timestamp, value in rows:
        verdict = detector.update(timestamp, value)
        yield timestamp, value, verdict.score, int(verdict.started)


def write_results(
    out: TextIO, stamps: Iterable[str], results: Iterable[tuple[float, float, float, int]]
) -> None:
    """Write `timestamp,value,score,alert`, keeping the input's timestamp text."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "score", "alert"])
    for stamp, (_, value, score, alert) in zip(stamps, results, strict=True):
        writer.writerow([stamp, repr(value), f"{score:.6f}", alert])


def backtest_main(
    signal: str, path: str, out: TextIO, settings: DetectionSettings | None = None
) -> int:
    """CLI body of `outagewatch backtest`: exit code 0, 1 on bad input.

    ``settings`` are the daemon's (its config's ``detection:``); default: the defaults.
    """
    try:
        with open(path, newline="", encoding="utf-8") as stream:
            series = read_series(stream)
        rows = ((ts, v) for _, ts, v in series)
        results = run_backtest(signal, rows, settings or DetectionSettings())
        write_results(out, (text for text, _, _ in series), results)
    except (OSError, ValueError) as exc:
        print(f"outagewatch backtest: {path}: {exc}", file=sys.stderr)
        return 1
    return 0
