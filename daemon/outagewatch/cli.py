"""Command line: ``outagewatch run | check-config | --version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from outagewatch import __version__, reports_cli
from outagewatch.app import DEFAULT_LISTEN, Daemon, parse_listen_address
from outagewatch.config import EX_CONFIG, ConfigError, ShardConfig, format_errors, load_config
from outagewatch.logging import LEVELS, configure
from outagewatch.store import StoreError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outagewatch",
        description="Sees AI chatbot outages before the official status page does.",
    )
    parser.add_argument("--version", action="version", version=f"outagewatch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config.file", dest="config_file", required=True, metavar="FILE")
    run.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address for /metrics, pages and the API (default {DEFAULT_LISTEN})",
    )
    run.add_argument("--log.level", dest="log_level", choices=LEVELS, default="info")
    run.add_argument(
        "--log.format",
        dest="log_format",
        choices=("logfmt", "json", "console"),
        default=None,
        help="default: console on a terminal, json otherwise",
    )

    run.add_argument(
        "--shard.index",
        dest="shard_index",
        type=int,
        metavar="N",
        help="this instance's shard, 0..count-1 (overrides `shard:` in the config)",
    )
    run.add_argument(
        "--shard.count",
        dest="shard_count",
        type=int,
        metavar="N",
        help="number of instances splitting the probes",
    )

    run.add_argument(
        "--event-loop",
        dest="event_loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="uvloop (the optional `fast` extra) spends less CPU per probe",
    )

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config.file", dest="config_file", required=True, metavar="FILE")
    reports_cli.add_commands(commands)
    return parser


def _check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EX_CONFIG
    probes = sum(len(s.probes) for s in config.services.values())
    print(f"{path}: OK ({len(config.services)} services, {probes} probes)")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        parse_listen_address(args.listen)
    except ValueError as exc:
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 2
    shard = None
    if args.shard_index is not None or args.shard_count is not None:
        flags = {"index": args.shard_index or 0, "count": args.shard_count or 1}
        try:
            shard = ShardConfig.model_validate(flags)
        except ValidationError as exc:
            for error in format_errors(exc, flags):
                print(f"outagewatch: --shard.{error}", file=sys.stderr)
            return 2
    loop_factory = None
    if args.event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("outagewatch: --event-loop uvloop: uvloop is not installed", file=sys.stderr)
            return 2
        loop_factory = uvloop.new_event_loop
    configure(args.log_level, args.log_format)
    daemon = Daemon(args.config_file, args.listen, shard=shard)
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(daemon.run())
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EX_CONFIG
    except (OSError, StoreError) as exc:  # e.g. the port is taken
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config_file)
    if args.command == "reports":
        return reports_cli.run(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
