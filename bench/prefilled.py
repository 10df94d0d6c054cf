"""``outagewatch run`` with its state pre-filled to steady state, for the benchmarks.

Before the daemon starts, every probe of the ``bench`` service gets 6 hours of
runs through ``Pipeline.record_run`` (``bench.memory.prefill``: one run every 5
minutes, so every bounded buffer is at its cap); then the daemon runs as
``outagewatch run`` would, and probes for real. Every 30 s it writes its number of
asyncio tasks to ``--tasks-file`` (RSS and fds the benchmark reads from /proc).

    PYTHONPATH=daemon python -m bench.prefilled --config.file F --web.listen-address A \
        --tasks-file T [--event-loop asyncio|uvloop]  (default as outagewatch run)
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.memory import SERVICE, prefill
from outagewatch.app import Daemon
from outagewatch.config import load_config
from outagewatch.logging import configure

SAMPLE_EVERY = 30.0


async def _count_tasks(path: Path) -> None:
    """One line a sample: wall time, asyncio tasks alive."""
    while True:
        with path.open("a") as out:
            out.write(f"{time.time():.3f} {len(asyncio.all_tasks())}\n")
        await asyncio.sleep(SAMPLE_EVERY)


async def _run(daemon: Daemon, tasks_file: Path) -> int:
    sampler = asyncio.create_task(_count_tasks(tasks_file))
    try:
        return await daemon.run()
    finally:
        sampler.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config.file", dest="config_file", required=True)
    parser.add_argument("--web.listen-address", dest="listen", required=True)
    parser.add_argument("--tasks-file", type=Path, required=True)
    parser.add_argument("--event-loop", choices=("asyncio", "uvloop"), default=None)
    parser.add_argument("--no-prefill", action="store_true", help="start empty, to compare")
    args = parser.parse_args()
    configure("error", "json")  # the pre-filled failures and recoveries would each log
    targets = len(load_config(args.config_file).services[SERVICE].probes)
    daemon = Daemon(args.config_file, args.listen)
    started = time.monotonic()
    runs = 0 if args.no_prefill else prefill(daemon.pipeline, targets, time.time())
    configure("warning", "json")
    print(
        f"prefilled {runs} runs of {targets} probes in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.event_loop != "asyncio":  # as `outagewatch run`: uvloop when installed
        try:
            import uvloop
        except ImportError:
            if args.event_loop == "uvloop":
                raise
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(_run(daemon, args.tasks_file))


if __name__ == "__main__":
    sys.exit(main())
