"""CPU per probe of the HTTP probes' client (sources/wire.py): this tree against a revision.

The cheap check before and after a change to the client: both versions fetch the
same local nginx page over a fresh connection per request, in this one process,
in alternating batches so both see the same machine. The figure is this process's
CPU microseconds per request (nginx runs in its own process and is not counted).

    PYTHONPATH=daemon python -m bench.wire_cost [--against REV] [--requests 3000] [--runs 6]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import nginx_target
from outagewatch.sources.client import PhaseTimer

ROOT = Path(__file__).resolve().parents[1]
WIRE = "daemon/outagewatch/sources/wire.py"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def cpu_per_request(wire: Any, url: str, requests: int, concurrency: int = 20) -> float:
    fetcher = wire.Fetcher(
        wire.Request("GET", wire.Url(url), {}, None), wire.ssl_context(), 1 << 20, False, True, 10
    )

    async def no_lookup(*_args: object) -> list[tuple[int, str]]:
        raise AssertionError("an IP literal needs no lookup")

    slots = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with slots:
            response = await fetcher.fetch(no_lookup, "any", PhaseTimer(time.monotonic))
            assert response.status == 200

    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(requests)))
    return (time.process_time() - start) / requests * 1e6


async def compare(versions: dict[str, ModuleType], url: str, requests: int, runs: int) -> None:
    figures: dict[str, list[float]] = {name: [] for name in versions}
    for _ in range(runs):
        for name, wire in versions.items():
            figures[name].append(await cpu_per_request(wire, url, requests))
    for name, values in figures.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:>12}: median {statistics.median(values):.0f} µs CPU/request ({shown})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "wire_old.py"
        old.write_bytes(
            subprocess.run(
                ["git", "show", f"{args.against}:{WIRE}"], cwd=ROOT, capture_output=True, check=True
            ).stdout
        )
        versions = {args.against: load("wire_old", old), "this tree": load("wire_new", ROOT / WIRE)}
        with nginx_target(Path(tmp)) as base:
            asyncio.run(compare(versions, base + "/", args.requests, args.runs))


if __name__ == "__main__":
    main()
