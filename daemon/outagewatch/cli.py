"""Command line: ``outagewatch run | check-config | reports | backtest | --version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from outagewatch import __version__, reports_cli
from outagewatch.app import DEFAULT_LISTEN, Daemon, parse_listen_address
from outagewatch.config import EX_CONFIG, ConfigError, ShardConfig, format_errors, load_config
from outagewatch.detect import BACKTEST_SIGNALS
from outagewatch.detect.backtest import backtest_main
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
        default=None,
        help="default uvloop when installed (the `fast` extra; less CPU per probe), else asyncio",
    )

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("--config.file", dest="config_file", required=True, metavar="FILE")
    reports_cli.add_commands(commands)

    demo = commands.add_parser(
        "demo", help="replay the seed day against a simulated world on loopback"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="timeline speed: 1 tells the story in about five minutes, 2 in half that",
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed of the world")
    demo.add_argument(
        "--web.listen-address",
        dest="listen",
        default="127.0.0.1:10060",
        metavar="HOST:PORT",
        help="the daemon's address (default 127.0.0.1:10060)",
    )
    demo.add_argument("--log.level", dest="log_level", choices=LEVELS, default="error")
    demo.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop once the story is over instead of serving on",
    )

    backtest = commands.add_parser(
        "backtest",
        help="replay a timestamp,value CSV through the daemon's spike detector",
        description="Reads timestamp,value rows and writes timestamp,value,score,alert "
        "(alert 1 where a spike starts) with the daemon's detector and default parameters.",
    )
    backtest.add_argument("--signal", required=True, choices=BACKTEST_SIGNALS)
    backtest.add_argument("file", metavar="FILE.csv")
    backtest.add_argument(
        "-o", "--output", metavar="OUT", help="write the results here (default: stdout)"
    )
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
    if args.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.event_loop == "uvloop":
                print("outagewatch: --event-loop uvloop: uvloop is not installed", file=sys.stderr)
                return 2
        else:
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


def _demo(args: argparse.Namespace) -> int:
    from outagewatch.demo.runner import run_demo

    if not 0.1 <= args.speed <= 20:
        print("outagewatch: --speed must be between 0.1 and 20", file=sys.stderr)
        return 2
    try:
        parse_listen_address(args.listen)
    except ValueError as exc:
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 2
    configure(args.log_level, None)
    try:
        return asyncio.run(run_demo(args.speed, args.seed, args.listen, args.exit_when_done))
    except KeyboardInterrupt:
        return 0
    except (OSError, StoreError, RuntimeError) as exc:
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 1


def _backtest(args: argparse.Namespace) -> int:
    if args.output is None:
        return backtest_main(args.signal, args.file, sys.stdout)
    output = Path(args.output)
    try:
        with output.open("w", newline="", encoding="utf-8") as out:
            code = backtest_main(args.signal, args.file, out)
    except OSError as exc:
        print(f"outagewatch backtest: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if code != 0:
        output.unlink(missing_ok=True)  # no half-written results on bad input
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config_file)
    if args.command == "reports":
        return reports_cli.run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "backtest":
        return _backtest(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
