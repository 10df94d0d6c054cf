"""Command line: ``outagewatch run | check-config | reports | backtest | --version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from outagewatch import __version__, reports_cli
from outagewatch.app import DEFAULT_LISTEN, Daemon, parse_listen_address, prepare_sources
from outagewatch.config import (
    EX_CONFIG,
    ConfigError,
    load_config,
    parse_duration,
)
from outagewatch.detect import BACKTEST_SIGNALS
from outagewatch.detect.backtest import backtest_main
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.logging import LEVELS, configure
from outagewatch.revision import build_revision
from outagewatch.scrub import Scrubber
from outagewatch.store import StoreError
from outagewatch.web.connections import ServerTimeouts
from outagewatch.web.security import Network, load_web_config, parse_networks
from outagewatch.web.server import WebOptions


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: want e.g. 10s, 1m") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be above 0")
    return seconds


def _networks(text: str) -> list[Network]:
    try:
        return list(parse_networks(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: want a whole number >= 1")
    return int(text)


def _add_web_flags(run: argparse.ArgumentParser) -> None:
    """Prometheus' and exporter-toolkit's --web.* flags; docs/security.md."""
    run.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web config: TLS, basic auth (bcrypt), headers; reread on reload",
    )
    run.add_argument(
        "--web.external-url",
        dest="external_url",
        metavar="URL",
        help="the URL users reach the daemon at (behind a reverse proxy); builds links",
    )
    run.add_argument(
        "--web.route-prefix",
        dest="route_prefix",
        metavar="PATH",
        help="prefix of every route (default: the path of --web.external-url)",
    )
    run.add_argument(
        "--web.trusted-proxies",
        dest="trusted_proxies",
        type=_networks,
        default=[],
        metavar="CIDR,...",
        help="peers whose X-Forwarded-For is believed (for report rate limits and logs)",
    )
    run.add_argument(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="allow POST /-/reload (SIGHUP always works)",
    )
    defaults = ServerTimeouts()
    run.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_positive,
        default=WebOptions().max_connections,
        metavar="N",
        help="inbound connections held at once; more are closed at once (default %(default)s)",
    )
    run.add_argument(
        "--web.read-header-timeout",
        dest="header_timeout",
        type=_duration,
        default=defaults.header,
        metavar="DURATION",
        help="a connection's first request head (and TLS handshake) must arrive within this",
    )
    run.add_argument(
        "--web.read-timeout",
        dest="body_timeout",
        type=_duration,
        default=defaults.body,
        metavar="DURATION",
        help="a request body must arrive within this after its head",
    )
    run.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=_duration,
        default=defaults.idle,
        metavar="DURATION",
        help="a keep-alive connection is closed when no next request arrives within this",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="outagewatch",
        description="Sees AI chatbot outages before the official status page does.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"outagewatch {__version__} (revision {build_revision()})",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument(
        "--config.file",
        dest="config_file",
        required=True,
        metavar="FILE",
        help="the YAML config (every key: docs/configuration.md)",
    )
    run.add_argument(
        "--web.listen-address",
        dest="listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"address for /metrics, pages and the API (default {DEFAULT_LISTEN})",
    )
    _add_web_flags(run)
    run.add_argument(
        "--log.level", dest="log_level", choices=LEVELS, default="info", help="default: info"
    )
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
        help="this instance's shard, 0..count-1 (overrides `shard.index` in the config)",
    )
    run.add_argument(
        "--shard.count",
        dest="shard_count",
        type=int,
        metavar="N",
        help="number of instances splitting the probes",
    )
    run.add_argument(
        "--shard.replicas",
        dest="shard_replicas",
        type=int,
        metavar="K",
        help="instances each probe runs on, in different regions (default 1)",
    )

    run.add_argument(
        "--event-loop",
        dest="event_loop",
        choices=("asyncio", "uvloop"),
        default=None,
        help="default uvloop when installed (the `fast` extra; less CPU per probe), else asyncio",
    )

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument(
        "--config.file",
        dest="config_file",
        required=True,
        metavar="FILE",
        help="the YAML config (every key: docs/configuration.md)",
    )
    check.add_argument(
        "--web.config.file", dest="web_config_file", metavar="FILE", help="also check this"
    )
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
    demo.add_argument(
        "--log.level",
        dest="log_level",
        choices=LEVELS,
        default="error",
        help="the daemon's log level (default: error, so the story stays readable)",
    )
    demo.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop once the story is over instead of serving on",
    )

    backtest = commands.add_parser(
        "backtest",
        help="replay a timestamp,value CSV through the daemon's spike detector",
        description="Reads timestamp,value rows and writes timestamp,value,score,alert "
        "(alert 1 where a spike starts) with the detector the daemon runs for that signal "
        "(generic: the traffic queries' detector) and the daemon's settings: the defaults, "
        "or the `detection:` of --config.file.",
    )
    backtest.add_argument(
        "--signal",
        required=True,
        choices=BACKTEST_SIGNALS,
        help="which detector: the kind of series the file holds",
    )
    backtest.add_argument(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        help="take the detector settings from this daemon config's `detection:`",
    )
    backtest.add_argument("file", metavar="FILE.csv", help="timestamp,value rows")
    backtest.add_argument(
        "-o", "--output", metavar="OUT", help="write the results here (default: stdout)"
    )
    return parser


def _check_config(path: str, web_config_file: str | None) -> int:
    # The same checks as `run` (start-up and reload): the file, the files it names,
    # and the sources it builds.
    try:
        config = load_config(path)
        prepare_sources(config, ChatBudget(), path)
        if web_config_file is not None:
            load_web_config(web_config_file)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EX_CONFIG
    probes = sum(len(s.probes) for s in config.services.values())
    print(f"{path}: OK ({len(config.services)} services, {probes} probes)")
    if web_config_file is not None:
        print(f"{web_config_file}: OK")
    return 0


def _run(args: argparse.Namespace) -> int:
    try:
        parse_listen_address(args.listen)
    except ValueError as exc:
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 2
    # Each --shard.* flag given replaces its key of the file's `shard:`.
    given = {"index": args.shard_index, "count": args.shard_count, "replicas": args.shard_replicas}
    shard_flags = {key: value for key, value in given.items() if value is not None}
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
    web_options = WebOptions(
        config_file=args.web_config_file,
        external_url=args.external_url,
        route_prefix=args.route_prefix,
        trusted_proxies=tuple(args.trusted_proxies),
        enable_lifecycle=args.enable_lifecycle,
        max_connections=args.max_connections,
        timeouts=ServerTimeouts(args.header_timeout, args.body_timeout, args.idle_timeout),
    )
    # One scrubber for the process: the log and the web answers share it, and the
    # daemon gives it the secrets of each config it applies.
    scrubber = Scrubber()
    configure(args.log_level, args.log_format, scrubber)
    try:
        daemon = Daemon(
            args.config_file,
            args.listen,
            shard_flags=shard_flags,
            scrubber=scrubber,
            web_options=web_options,
        )
    except ValueError as exc:  # e.g. --web.external-url
        print(f"outagewatch: {exc}", file=sys.stderr)
        return 2
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
    settings = None
    if args.config_file is not None:
        try:
            settings = load_config(args.config_file).detection
        except ConfigError as exc:
            print(exc.render(), file=sys.stderr)
            return EX_CONFIG
    if args.output is None:
        return backtest_main(args.signal, args.file, sys.stdout, settings)
    output = Path(args.output)
    try:
        with output.open("w", newline="", encoding="utf-8") as out:
            code = backtest_main(args.signal, args.file, out, settings)
    except OSError as exc:
        print(f"outagewatch backtest: {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if code != 0:
        output.unlink(missing_ok=True)  # no half-written results on bad input
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        return _check_config(args.config_file, args.web_config_file)
    if args.command == "reports":
        return reports_cli.run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "backtest":
        return _backtest(args)
    return _run(args)


if __name__ == "__main__":
    sys.exit(main())
