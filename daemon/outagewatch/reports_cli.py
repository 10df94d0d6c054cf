"""``outagewatch reports import FILE.csv`` and ``outagewatch reports export``.

Import seeds history so the baseline is right from day one: rows of
``timestamp,service,problem[,country]`` (timestamp as ISO 8601 or epoch
seconds; a header row is skipped). Every row is checked first; one bad row
imports nothing. Export writes the same columns, so an export imports again.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sqlite3
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from outagewatch.clock import SystemClock, parse_timestamp
from outagewatch.config import EX_CONFIG, Config, ConfigError, load_config
from outagewatch.observations import Report
from outagewatch.store import Store, StoreError

HEADER = ("timestamp", "service", "problem", "country")
MAX_ERRORS_SHOWN = 20


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
    rows: Iterable[list[str]], config: Config, source: str
) -> tuple[list[Report], list[str]]:
    """Reports from CSV rows, or the errors (``file:line: message``) that stop the import."""
    reports: list[Report] = []
    errors: list[str] = []
    for line, row in enumerate(rows, start=1):
        if not row or (line == 1 and row[0].strip().lower() == "timestamp"):
            continue
        where = f"{source}:{line}"
        if len(row) not in (3, 4):
            errors.append(
                f"{where}: want timestamp,service,problem[,country], got {len(row)} columns"
            )
            continue
        service, problem = row[1].strip(), row[2].strip()
        country = row[3].strip().upper() if len(row) == 4 and row[3].strip() else None
        try:
            when = parse_timestamp(row[0])
        except ValueError:
            errors.append(f"{where}: timestamp {row[0]!r} is neither ISO 8601 nor epoch seconds")
            continue
        if service not in config.services:
            errors.append(f"{where}: unknown service {service!r}")
        elif problem not in config.reports.problems:
            errors.append(f"{where}: unknown problem {problem!r}")
        else:
            reports.append(Report(service, problem, when, country=country, channel="import"))
    return reports, errors


def _store(args: argparse.Namespace, config: Config) -> Store:
    path = (
        Path(args.storage_path) if args.storage_path else config.storage.resolved_path(os.environ)
    )
    return Store(path, SystemClock(), config.storage.synchronous)


def _import(args: argparse.Namespace, config: Config) -> int:
    try:
        with open(args.file, newline="", encoding="utf-8") as handle:
            reports, errors = read_csv(csv.reader(handle), config, args.file)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        print(f"outagewatch: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    if errors:
        for error in errors[:MAX_ERRORS_SHOWN]:
            print(error, file=sys.stderr)
        if len(errors) > MAX_ERRORS_SHOWN:
            print(f"... and {len(errors) - MAX_ERRORS_SHOWN} more", file=sys.stderr)
        print("outagewatch: nothing imported", file=sys.stderr)
        return 1
    store = _store(args, config)
    store.open()
    try:
        count = asyncio.run(store.import_reports(reports))
    finally:
        store.close()
    print(f"imported {count} reports into {store.path}")
    return 0


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
    for when, service, problem, country in store.iter_reports(since):
        stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
        writer.writerow((stamp.replace("+00:00", "Z"), service, problem, country or ""))
    return 0


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
