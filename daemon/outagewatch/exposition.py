"""/metrics at thousands of targets: per-target text cached until the target runs again.

prometheus_client builds a Sample object for every series on every scrape; at
10,000 probes (about 30 series each) that takes seconds, most of it for targets
that have not run since the last scrape. The per-probe and per-source families
are rendered here straight from ``State``, each target's lines kept until its
run count moves; the few process-wide families still come from the registry
(``GlobalStateCollector`` is ``StateCollector`` less those two sections).

The page is Prometheus text format 0.0.4 whatever the Accept header asks:
Prometheus reads it, and OpenMetrics would add nothing these metrics use.
Rendering yields to the event loop every few hundred targets, so a scrape does
not hold up scheduled runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.utils import floatToGoString

from outagewatch.metrics import CATALOGUE, Families, StateCollector
from outagewatch.observations import PHASES
from outagewatch.pipeline import ProbeState, SourceRunState, State

PROBE_FAMILIES = (
    "outagewatch_probe_success",
    "outagewatch_probe_duration_seconds",
    "outagewatch_probe_total_duration_seconds",
    "outagewatch_probe_http_status_code",
    "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds",
    "outagewatch_probes_total",
    "outagewatch_probe_failures_total",
    "outagewatch_probe_inconclusive_total",
    "outagewatch_probe_last_success_timestamp_seconds",
)
RUN_FAMILIES = (
    "outagewatch_source_runs_total",
    "outagewatch_source_failures_total",
    "outagewatch_source_last_run_duration_seconds",
    "outagewatch_source_last_success_timestamp_seconds",
)
# Targets rendered between two yields to the event loop (a few milliseconds).
_TARGETS_PER_SLICE = 500

Entry = TypeVar("Entry", ProbeState, SourceRunState)
Chunks = tuple[bytes, ...]
# Go's float formatting, as generate_latest writes values (typed here: the library's is not).
_fmt: Callable[[float], str] = floatToGoString


class GlobalStateCollector(StateCollector):
    """StateCollector without the per-probe and per-source families MetricsPage renders."""

    def _probes(self, state: State) -> Families:
        return Families()

    def _runs(self, state: State) -> Families:
        return Families()


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str) -> bytes:
    spec = CATALOGUE[name]
    text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {text}\n# TYPE {name} {spec.type}\n".encode()


def _probe_chunks(service: str, probe_name: str, probe: ProbeState) -> Chunks:
    """One probe's lines, one string per family of PROBE_FAMILIES."""
    fmt = _fmt
    labels = f'service="{_label_value(service)}",probe="{_label_value(probe_name)}"'
    success = status = tls = phases = last_success = ""
    if probe.last_conclusive is not None:
        success = f"outagewatch_probe_success{{{labels}}} {fmt(int(probe.last_conclusive))}\n"
    last = probe.last
    if last is not None:
        phases = "".join(
            f'outagewatch_probe_duration_seconds{{{labels},phase="{phase}"}} '
            f"{fmt(last.phases.get(phase, 0.0))}\n"
            for phase in PHASES
        )
        status = f"outagewatch_probe_http_status_code{{{labels}}} {fmt(last.status_code or 0)}\n"
        if last.tls_earliest_expiry is not None:
            tls = (
                "outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds"
                f"{{{labels}}} {fmt(last.tls_earliest_expiry)}\n"
            )
    hist = probe.durations
    buckets = hist.cumulative()
    name = "outagewatch_probe_total_duration_seconds"
    histogram = "".join(
        f'{name}_bucket{{{labels},le="{le}"}} {fmt(count)}\n' for le, count in buckets
    ) + (
        f"{name}_count{{{labels}}} {fmt(buckets[-1][1])}\n{name}_sum{{{labels}}} {fmt(hist.sum)}\n"
    )
    failures = "".join(
        f'outagewatch_probe_failures_total{{{labels},reason="{_label_value(reason)}"}} '
        f"{fmt(count)}\n"
        for reason, count in sorted(probe.failures.items())
    )
    if probe.last_success_time is not None:
        last_success = (
            f"outagewatch_probe_last_success_timestamp_seconds{{{labels}}} "
            f"{fmt(probe.last_success_time)}\n"
        )
    lines = (
        success,
        phases,
        histogram,
        status,
        tls,
        f"outagewatch_probes_total{{{labels}}} {fmt(probe.runs)}\n",
        failures,
        f"outagewatch_probe_inconclusive_total{{{labels}}} {fmt(probe.inconclusive)}\n",
        last_success,
    )
    return tuple(line.encode() for line in lines)


def _run_chunks(key: str, run: SourceRunState) -> Chunks:
    """One source's lines, one string per family of RUN_FAMILIES."""
    fmt = _fmt
    labels = f'source="{_label_value(key)}",kind="{_label_value(run.kind)}"'
    failures = "".join(
        f'outagewatch_source_failures_total{{{labels},reason="{_label_value(reason)}"}} '
        f"{fmt(count)}\n"
        for reason, count in sorted(run.failures.items())
    )
    duration = success = ""
    if run.last_duration is not None:
        duration = (
            f"outagewatch_source_last_run_duration_seconds{{{labels}}} {fmt(run.last_duration)}\n"
        )
    if run.last_success_time is not None:
        success = (
            f"outagewatch_source_last_success_timestamp_seconds{{{labels}}} "
            f"{fmt(run.last_success_time)}\n"
        )
    lines = (
        f"outagewatch_source_runs_total{{{labels}}} {fmt(run.runs)}\n",
        failures,
        duration,
        success,
    )
    return tuple(line.encode() for line in lines)


class _TargetCache:
    """Rendered chunks per target, valid while the target's run count stays the same."""

    def __init__(self, families: tuple[str, ...]) -> None:
        self.headers = [_header(name) for name in families]
        self._entries: dict[Any, tuple[object, int, Chunks]] = {}

    async def render(
        self, items: Iterable[tuple[Any, Entry]], render_one: Callable[[Any, Entry], Chunks]
    ) -> list[bytes]:
        """One block per family: its header then every target's lines."""
        fresh: dict[Any, tuple[object, int, Chunks]] = {}
        rendered: list[Chunks] = []
        for count, (key, entry) in enumerate(items, 1):
            cached = self._entries.get(key)
            # Holding the entry object keeps its id from being reused by a new target.
            if cached is not None and cached[0] is entry and cached[1] == entry.runs:
                fresh[key] = cached
            else:
                fresh[key] = (entry, entry.runs, render_one(key, entry))
            rendered.append(fresh[key][2])
            if count % _TARGETS_PER_SLICE == 0:
                await asyncio.sleep(0)
        self._entries = fresh  # targets gone from the state leave the cache
        columns = zip(*rendered, strict=True) if rendered else ((),) * len(self.headers)
        return [
            header + b"".join(column) for header, column in zip(self.headers, columns, strict=True)
        ]


class MetricsPage:
    """Renders /metrics: cached per-target families from State, the rest from the registry."""

    def __init__(self, state: State, registry: CollectorRegistry) -> None:
        self._state = state
        self._registry = registry
        self._probes = _TargetCache(PROBE_FAMILIES)
        self._runs = _TargetCache(RUN_FAMILIES)

    async def render(self) -> bytes:
        """The whole page in text format 0.0.4."""
        state = self._state
        # Snapshots: runs finishing while a scrape yields must not resize what it walks.
        probes = await self._probes.render(
            sorted(state.probes.items()), lambda key, probe: _probe_chunks(key[0], key[1], probe)
        )
        runs = await self._runs.render(sorted(state.runs.items()), _run_chunks)
        return generate_latest(self._registry) + b"".join(probes) + b"".join(runs)

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler; gzip when the scraper accepts it (compressed off the loop)."""
        response = web.Response(
            body=await self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
        response.enable_compression()
        return response
