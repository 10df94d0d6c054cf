"""``outagewatch reports import FILE.csv`` and ``outagewatch reports export``.

Import seeds history so the baseline is right from day one: rows of
``timestamp,service,problem[,country]`` (timestamp as ISO 8601 or epoch
seconds; a header row is skipped). Every row is checked first, by the same
check as the intake API; one bad row imports nothing, and every bad row is
reported with its line. Export writes the same columns, so an export imports
again; a stored row that would not import (written by an older version or
another tool) is skipped with a warning naming its id, never a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import sqlite3
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from outagewatch.clock import Clock, SystemClock, parse_timestamp
from outagewatch.config import EX_CONFIG, Config, ConfigError, load_config
from outagewatch.detect.replay import SIGNAL, Replay, adopt, bucket_start, replay
from outagewatch.detect.signals import SignalDetectors
from outagewatch.observations import Report
from outagewatch.report_fields import (
    MAX_CHARS,
    FieldError,
    check_country,
    check_fields,
    check_text,
    check_time,
)
from outagewatch.store import Store, StoreError, StoreLock, StoreLocked, decode_state
from outagewatch.warmstart import stored_reports

HEADER = ("timestamp", "service", "problem", "country")
DETECTORS = "detectors"  # the detectors' state namespace (app.py)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``reports import`` and ``reports export``."""
    reports = commands.add_parser("reports", help="import or export users' outage reports")
    actions = reports.add_subparsers(dest="reports_command", required=True, metavar="ACTION")
    for name, help_text in (
        ("import", "seed report history from a CSV file"),
        ("export", "write stored reports as CSV to stdout"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument(
            "--config.file",
            dest="config_file",
            required=True,
            metavar="FILE",
            help="the daemon's config (services, problems and the store)",
        )
        action.add_argument(
            "--storage.path",
            dest="storage_path",
            default=None,
            metavar="FILE",
            help="the database (default: storage.path from the config)",
        )
        if name == "import":
            action.add_argument(
                "file", metavar="FILE.csv", help="rows of timestamp,service,problem[,country]"
            )
        else:
            action.add_argument(
                "--since", default=None, help="only reports at or after this ISO 8601 time"
            )


def read_csv(
    lines: Iterable[str], config: Config, source: str, now: float
) -> tuple[list[Report], list[str]]:
    """Reports from CSV text, or the errors (``file:line: message``) that stop the import.

    Each row goes through the intake's own field check; times must be finite,
    after 1970 and not in the future (beyond a few minutes of clock skew).
    """
    reports: list[Report] = []
    errors: list[str] = []
    rows = csv.reader(lines)
    number = 0
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a cell over the csv module's size limit
            errors.append(f"{source}:{rows.line_num}: {exc}; the rest is not read")
            break
        number += 1
        line = rows.line_num  # a quoted cell may span lines: the line the row ends on
        if not row or (number == 1 and row[0].strip().lower() == "timestamp"):
            continue
        where = f"{source}:{line}"
        if len(row) not in (3, 4):
            errors.append(
                f"{where}: want timestamp,service,problem[,country], got {len(row)} columns"
            )
            continue
        values = dict(zip(("service", "problem", "country"), row[1:], strict=False))
        try:
            stamp = check_text("timestamp", row[0], 64)
            try:
                when = parse_timestamp(stamp)
            except (ValueError, OverflowError):
                raise FieldError(
                    "invalid_field", "timestamp", "timestamp is neither ISO 8601 nor epoch seconds"
                ) from None
            check_time(when, now)
            fields = check_fields(
                {k: v for k, v in values.items() if v != ""}, config, reporter_required=False
            )
        except FieldError as exc:
            value = row[0] if exc.field == "timestamp" else values.get(exc.field)
            errors.append(f"{where}: {exc.message} ({exc.field} {value!a})")
            continue
        reports.append(
            Report(fields.service, fields.problem, when, country=fields.country, channel="import")
        )
    return reports, errors


def _store(args: argparse.Namespace, config: Config) -> Store:
    path = (
        Path(args.storage_path) if args.storage_path else config.storage.resolved_path(os.environ)
    )
    return Store(path, SystemClock(), config.storage.synchronous)


def _import(args: argparse.Namespace, config: Config) -> int:
    try:
        # Undecodable bytes become lone surrogates, which the check names by line.
        with open(args.file, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            reports, errors = read_csv(handle, config, args.file, SystemClock().time())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"outagewatch: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    if errors:
        for error in errors:  # every one: the file is fixed in one go
            print(error, file=sys.stderr)
        print(f"outagewatch: {len(errors)} bad rows: nothing imported", file=sys.stderr)
        return 1
    store = _store(args, config)
    store.open()
    try:
        count = asyncio.run(store.import_reports(reports))
        print(f"imported {count} reports into {store.path}")
        lock = StoreLock(store.path)
        try:
            lock.acquire()
        except StoreLocked:
            print(
                "outagewatch: a daemon is running on this store: it replays the history "
                "through its detectors at its next start",
                file=sys.stderr,
            )
            return 0
        try:
            began = time.monotonic()
            done = asyncio.run(warm_detectors(store, config, SystemClock().time()))
        finally:
            lock.release()
    finally:
        store.close()
    print(
        f"replayed {done.reports} reports through the report detectors of "
        f"{len(done.services)} services in {time.monotonic() - began:.1f} s"
    )
    return 0


async def warm_detectors(store: Store, config: Config, now: float) -> Replay:
    """Replay every stored report into fresh report detectors and save them (warm start).

    The detectors' other signals and their alert counts are kept as stored.
    """
    services = sorted(config.services)
    settings = config.detection
    done = replay(
        settings, services, stored_reports(store.iter_reports(), services), bucket_start(now)
    )
    live = SignalDetectors(settings)
    live.configure(settings, services)
    for name, text in (await store.get_state_text(DETECTORS)).items():
        # Damaged: the daemon reports it at start; a report detector's is replaced below.
        with contextlib.suppress(ValueError, TypeError, KeyError):
            live.load({name: decode_state(text)})
    adopted = adopt(live, done)
    snapshot = live.snapshot()
    for service in adopted:
        name = f"{service}/{SIGNAL}"
        await store.put_state(DETECTORS, name, snapshot[name])
    return done


def _export(args: argparse.Namespace, config: Config, out: TextIO) -> int:
    try:
        since = parse_timestamp(args.since) if args.since else 0.0
    except ValueError:
        print(f"outagewatch: --since {args.since!r} is not an ISO 8601 time", file=sys.stderr)
        return 2
    store = _store(args, config)
    if not store.path.exists():
        print(f"outagewatch: no store at {store.path}", file=sys.stderr)
        return 1
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    clock = SystemClock()
    skipped = 0
    for row_id, *stored in store.iter_reports(since):
        try:
            row = export_row(stored, clock)
        except FieldError as exc:
            skipped += 1
            print(f"outagewatch: skipped report id {row_id}: {exc.message}", file=sys.stderr)
            continue
        writer.writerow(row)
    if skipped:
        print(
            f"outagewatch: skipped {skipped} stored reports that would not import", file=sys.stderr
        )
    return 0


def export_row(stored: list[Any], clock: Clock) -> tuple[str, str, str, str]:
    """One stored (time, service, problem, country) as CSV cells; FieldError if not importable.

    The rules of ``read_csv``, except the config's: its services may have changed since.
    """
    when, service, problem, country = stored
    if isinstance(when, bool) or not isinstance(when, int | float):
        raise FieldError("invalid_field", "timestamp", "timestamp is not a number")
    check_time(float(when), clock.time())
    check_text("service", service, MAX_CHARS["service"])
    check_text("problem", problem, MAX_CHARS["problem"])
    if country is not None:
        country = check_country(check_text("country", country, MAX_CHARS["country"]))
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z"), service, problem, country or ""


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``reports import|export``; exit code."""
    try:
        config = load_config(args.config_file)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EX_CONFIG
    try:
        if args.reports_command == "import":
            return _import(args, config)
        return _export(args, config, out)
    except (StoreError, OSError, sqlite3.Error) as exc:
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 1
