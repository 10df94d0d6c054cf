"""/metrics at thousands of targets: per-target text cached until the target runs again.

prometheus_client builds a Sample object for every series on every scrape; at
10,000 probes (about 30 series each) that takes seconds, most of it for targets
that have not run since the last scrape. The per-probe and per-source families
are rendered here from the live per-target records (``views.StatusQuery``), each
target's lines kept until its
run count moves; the few process-wide families still come from the registry
(``metrics.StateCollector``). One renderer per family: the per-target ones
exist only here. A probe has only the series the shipped dashboards and rules read
(about 0.35 kB) unless ``metrics.probe_details`` is on (docs/http-probes.md).

The page is Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the
scraper's Accept header prefers it (Prometheus does by default). The two differ
only in the metadata (a counter family is named without ``_total``) and the
closing ``# EOF``, so the per-target lines are cached once for both; only the
headers come in two versions. Rendering yields to the event loop every few
hundred targets, so a scrape does not hold up scheduled runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as _generate_openmetrics
from prometheus_client.utils import floatToGoString

from outagewatch.catalogue import (
    CORE_CATALOGUE,
    PROBE_DETAIL_FAMILIES,
    PROBE_FAMILIES,
    RUN_FAMILIES,
)
from outagewatch.config_types import MetricsConfig
from outagewatch.keys import is_probe_source_key
from outagewatch.lenses.probe import ProbeState
from outagewatch.observations import PHASES
from outagewatch.views import StatusQuery

# What the page is, named here rather than taken from the library, whose "latest"
# constants move with its releases while these bytes do not.
CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Targets rendered between two yields to the event loop (a few milliseconds).
_TARGETS_PER_SLICE = 250


class RunTotals(Protocol):
    """What /metrics renders of a source's runs (``pipeline.SourceRunState`` is one)."""

    @property
    def kind(self) -> str: ...
    @property
    def runs(self) -> int: ...
    @property
    def failures(self) -> Mapping[str, int]: ...
    @property
    def last_duration(self) -> float | None: ...
    @property
    def last_success_time(self) -> float | None: ...


Entry = TypeVar("Entry", ProbeState, RunTotals)
Chunks = tuple[bytes, ...]
# Go's float formatting, as generate_latest writes values (typed here: the library's is not).
_fmt: Callable[[float], str] = floatToGoString
generate_openmetrics: Callable[[CollectorRegistry], bytes] = _generate_openmetrics


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _header(name: str, openmetrics: bool) -> bytes:
    spec = CORE_CATALOGUE[name]
    text = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        # OpenMetrics names a counter family without its samples' _total suffix.
        text = text.replace('"', r"\"")
        if spec.type == "counter":
            name = name.removesuffix("_total")
    return f"# HELP {name} {text}\n# TYPE {name} {spec.type}\n".encode()


def wants_openmetrics(accept: str) -> bool:
    """Whether an Accept header ranks OpenMetrics text above the 0.0.4 text format."""
    best = {"openmetrics": 0.0, "text": 0.0}
    for media_range in accept.split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media_type == "application/openmetrics-text":
            best["openmetrics"] = max(best["openmetrics"], q)
        elif media_type in ("text/plain", "text/*", "*/*"):
            best["text"] = max(best["text"], q)
    return best["openmetrics"] > 0 and best["openmetrics"] >= best["text"]


def _number(value: float) -> str:
    """A value as generate_latest writes it; small whole counts without the slow path."""
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    return _fmt(value)


class _ProbeLines:
    """One probe's line prefixes (its labels never change), filled in at each new run.

    Labels in name order, as generate_latest writes them. The details (phases, last
    duration, last success time) only with ``details``: metrics.probe_details.
    """

    def __init__(self, service: str, probe_name: str, details: bool) -> None:
        self.details = details
        probe, svc = f'probe="{_label_value(probe_name)}"', f'service="{_label_value(service)}"'
        labels = f"{probe},{svc}"
        self.success = f"outagewatch_probe_success{{{labels}}} "
        self.phases = [
            (phase, f'outagewatch_probe_duration_seconds{{phase="{phase}",{labels}}} ')
            for phase in PHASES
        ]
        self.duration = f"outagewatch_probe_last_duration_seconds{{{labels}}} "
        self.status = f"outagewatch_probe_http_status_code{{{labels}}} "
        self.tls = f"outagewatch_probe_tls_earliest_cert_expiry_timestamp_seconds{{{labels}}} "
        self._tls_line: tuple[float | None, str] = (None, "")
        self.runs = f"outagewatch_probes_total{{{labels}}} "
        self.failures = f"outagewatch_probe_failures_total{{{labels}}} "
        self.inconclusive = f"outagewatch_probe_inconclusive_total{{{labels}}} "
        self.last_success = f"outagewatch_probe_last_success_timestamp_seconds{{{labels}}} "

    def render(self, probe: ProbeState) -> Chunks:
        """The probe's lines, one string per family of PROBE_FAMILIES (then of
        PROBE_DETAIL_FAMILIES with details)."""
        success = status = tls = failures = inconclusive = ""
        if probe.last_conclusive is not None:
            success = f"{self.success}{_number(int(probe.last_conclusive))}\n"
        last = probe.last
        if last is not None:
            status = f"{self.status}{_number(last.status_code or 0)}\n"
            expiry = last.tls_earliest_expiry
            if expiry is not None:
                # The same certificate run after run: its line is formatted once.
                if self._tls_line[0] != expiry:
                    self._tls_line = (expiry, f"{self.tls}{_number(expiry)}\n")
                tls = self._tls_line[1]
        if probe.failures:  # absent until the first: most probes never fail
            failures = f"{self.failures}{_number(probe.failures)}\n"
        if probe.inconclusive:
            inconclusive = f"{self.inconclusive}{_number(probe.inconclusive)}\n"
        chunks = [
            success,
            status,
            tls,
            f"{self.runs}{_number(probe.runs)}\n",
            failures,
            inconclusive,
        ]
        if self.details:
            chunks += self._details(probe)
        return tuple(chunk.encode() for chunk in chunks)

    def _details(self, probe: ProbeState) -> list[str]:
        phases = duration = last_success = ""
        last = probe.last
        if last is not None:
            got = last.phases
            phases = "".join(
                f"{prefix}{_number(got.get(phase, 0.0))}\n" for phase, prefix in self.phases
            )
            duration = f"{self.duration}{_number(last.duration_seconds)}\n"
        if probe.last_success_time is not None:
            last_success = f"{self.last_success}{_number(probe.last_success_time)}\n"
        return [phases, duration, last_success]


class _RunLines:
    """One source's line prefixes, filled in at each new run (labels in name order).

    A probe's source shows only its failures (the framework's: timeouts, crashes)
    unless ``details``: its runs and their times are its probe's series.
    """

    def __init__(self, key: str, kind: str, details: bool) -> None:
        self.brief = not details and is_probe_source_key(key)
        self.kind, self.source = f'kind="{_label_value(kind)}"', f'source="{_label_value(key)}"'
        labels = f"{self.kind},{self.source}"
        self.runs = f"outagewatch_source_runs_total{{{labels}}} "
        self.duration = f"outagewatch_source_last_run_duration_seconds{{{labels}}} "
        self.success = f"outagewatch_source_last_success_timestamp_seconds{{{labels}}} "

    def render(self, run: RunTotals) -> Chunks:
        """The source's lines, one string per family of RUN_FAMILIES."""
        failures = "".join(
            f"outagewatch_source_failures_total{{{self.kind},"
            f'reason="{_label_value(reason)}",{self.source}}} {_number(count)}\n'
            for reason, count in sorted(run.failures.items())
        )
        if self.brief:
            return (b"", failures.encode(), b"", b"")
        duration = success = ""
        if run.last_duration is not None:
            duration = f"{self.duration}{_number(run.last_duration)}\n"
        if run.last_success_time is not None:
            success = f"{self.success}{_number(run.last_success_time)}\n"
        chunks = (f"{self.runs}{_number(run.runs)}\n", failures, duration, success)
        return tuple(chunk.encode() for chunk in chunks)


# Family index, lines, index, lines, ...: one flat tuple, as every object a target
# keeps is one more for each full garbage collection to walk.
Parts = tuple[int | bytes, ...]


def _parts(chunks: Chunks) -> Parts:
    """The families that have lines, with their lines: most targets have none in most
    families (a probe's source, its failures), and a scrape walks them all."""
    return tuple(part for i, chunk in enumerate(chunks) if chunk for part in (i, chunk))


class _Cached:
    """A target's line prefixes and its lines as of one run count."""

    __slots__ = ("entry", "lines", "parts", "runs")

    def __init__(self, lines: _ProbeLines | _RunLines, entry: object, runs: int, parts: Parts):
        self.lines = lines
        self.entry = entry  # held, so its id cannot be reused by a new target
        self.runs = runs
        self.parts = parts


class _TargetCache:
    """Rendered chunks per target, valid while the target's run count stays the same."""

    def __init__(self, families: tuple[str, ...]) -> None:
        self.headers = {om: [_header(name, om) for name in families] for om in (False, True)}
        self._entries: dict[Any, _Cached] = {}

    async def render(
        self,
        entries: Mapping[Any, Entry],
        new_lines: Callable[[Any, Entry], _ProbeLines | _RunLines],
        openmetrics: bool = False,
    ) -> list[bytes]:
        """One block per family: its header then every target's lines."""
        fresh: dict[Any, _Cached] = {}
        headers = self.headers[openmetrics]
        columns: list[list[bytes]] = [[header] for header in headers]
        # A snapshot of the keys (not of key-entry pairs: 10,000 new tuples a scrape for
        # the collector to walk): runs finishing while a scrape yields must not resize
        # what it walks; a target removed meanwhile is skipped.
        for count, key in enumerate(list(entries), 1):
            entry = entries.get(key)
            if entry is None:
                continue
            cached = self._entries.get(key)
            if cached is None or cached.entry is not entry:
                lines = new_lines(key, entry)
                chunks = lines.render(entry)  # type: ignore[arg-type]
                assert len(chunks) == len(headers), "a chunk per family"
                cached = _Cached(lines, entry, entry.runs, _parts(chunks))
            elif cached.runs != entry.runs:
                cached.runs = entry.runs
                cached.parts = _parts(cached.lines.render(entry))  # type: ignore[arg-type]
            fresh[key] = cached
            # Family by family as we go: a transpose at the end held the loop for 40 ms.
            parts = iter(cached.parts)
            for index, chunk in zip(parts, parts, strict=True):
                columns[index].append(chunk)  # type: ignore[index,arg-type]
            if count % _TARGETS_PER_SLICE == 0:
                await asyncio.sleep(0)
        self._entries = fresh  # targets gone from the state leave the cache
        blocks = []
        for column in columns:
            blocks.append(b"".join(column))
            await asyncio.sleep(0)
        return blocks


class MetricsPage:
    """Renders /metrics: cached per-target families from the pipeline's records, the rest
    from the registry."""

    def __init__(
        self, status: StatusQuery, registry: CollectorRegistry, probe_details: bool = False
    ) -> None:
        self._status = status
        self._registry = registry
        self._details = probe_details
        self._probes, self._runs = self._caches()

    def _caches(self) -> tuple[_TargetCache, _TargetCache]:
        details = PROBE_DETAIL_FAMILIES if self._details else ()
        return _TargetCache(PROBE_FAMILIES + details), _TargetCache(RUN_FAMILIES)

    @property
    def probe_details(self) -> bool:
        """metrics.probe_details: whether each probe's phase, duration and last-success
        series are on the page."""
        return self._details

    @probe_details.setter
    def probe_details(self, details: bool) -> None:
        if details != self._details:  # every target's lines change with the families
            self._details = details
            self._probes, self._runs = self._caches()

    def apply(self, config: MetricsConfig) -> None:
        """A reload's ``metrics`` section: the next scrape has the families it names."""
        self.probe_details = config.probe_details

    async def render(self, openmetrics: bool = False) -> bytes:
        """The whole page in text format 0.0.4, or in OpenMetrics 1.0.0."""
        status = self._status
        # Snapshots: runs finishing (or a reload) while a scrape yields must not change
        # what it walks.
        details, probe_cache, run_cache = self._details, self._probes, self._runs
        probes = await probe_cache.render(
            status.probe_records(),
            lambda key, probe: _ProbeLines(key[0], key[1], details),
            openmetrics,
        )
        runs = await run_cache.render(
            status.run_records(),
            lambda key, run: _RunLines(key, run.kind, details),
            openmetrics,
        )
        if not openmetrics:
            return b"".join([generate_latest(self._registry), *probes, *runs])  # one copy
        rest = generate_openmetrics(self._registry).removesuffix(b"# EOF\n")
        return b"".join([rest, *probes, *runs, b"# EOF\n"])

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler; gzip when the scraper accepts it (compressed off the loop)."""
        openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
        content_type = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_TEXT
        response = web.Response(
            body=await self.render(openmetrics), headers={"Content-Type": content_type}
        )
        response.enable_compression()
        return response
