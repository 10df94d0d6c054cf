"""The probe lens (`services -> <name> -> probes`, `kind: http`), and every probe's record.

Sources: one HTTP(S) endpoint probe per configured probe (``source.py``). State:
each probe's last result and lifetime counters, whatever its kind (chat probes
yield the same ``ProbeResult``; the chat lens keeps what only they measure), and
a duration histogram and the seconds spent in each phase per service and kind.
Its per-probe metric families are rendered from a cache by ``exposition.py``; this
lens renders the per-service ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.clock import iso_time, when_text
from outagewatch.config_types import ChatProbeBase, HttpProbe, ProbeConfig
from outagewatch.detect.disruption import LOCAL_REASONS
from outagewatch.detect.signals import FAILURE_BUCKET_S
from outagewatch.detect.tracker import EVIDENCE_SLICE, ProbeStreaks, probe_evidence
from outagewatch.failure_text import failure_text
from outagewatch.histogram import Histogram
from outagewatch.keys import probe_source_key
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext, Placed
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.observations import PHASES, ProbeResult

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget

# Probe latency buckets: from a fast API edge to a slow web app.
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# At most one log line a minute per probe about a failure cause that changed.
DETAIL_LOG_INTERVAL = 60.0


@dataclass
class ProbeState:
    """What we know of one probe: its last result and its lifetime counters."""

    kind: str
    last: ProbeResult | None = None
    last_conclusive: bool | None = None
    last_success_time: float | None = None
    runs: int = 0
    failures: int = 0  # failed runs; their reasons are counted per service
    inconclusive: int = 0
    streaks: ProbeStreaks = field(default_factory=ProbeStreaks)
    detail_logged: tuple[str | None, float] = (None, float("-inf"))  # detail, monotonic time


@dataclass
class ProbesState:
    """Every probe by (service, probe); durations and phase totals by (service, kind)."""

    probes: dict[tuple[str, str], ProbeState] = field(default_factory=dict)
    durations: dict[tuple[str, str], Histogram] = field(default_factory=dict)
    # Seconds spent in each phase, summed per service and kind: the per-probe phase
    # series cost five lines a probe on /metrics (docs/http-probes.md).
    phases: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    # Failed runs per service by (reason, sub_reason): per probe, 7 HTTP reasons
    # made up to 7 lines a probe on /metrics (docs/benchmarks.md, scrape size).
    reasons: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)


class ProbeLens(Lens[ProbesState]):
    name = "probe"
    config_models = (HttpProbe,)
    # The union holds the chat lens's models too: one `probes` map of every kind.
    kind_unions = (ProbeConfig,)
    observations = (ProbeResult,)
    page_key = "probes"
    card_position = 1

    def new_state(self) -> ProbesState:
        return ProbesState()

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for service, service_config in config.services.items():
            for name, probe in service_config.probes.items():
                if probe.enabled and not isinstance(probe, ChatProbeBase):
                    yield Placed(HttpProbeSource(service, name, probe), "split")

    def apply(self, pipeline: Folding, state: ProbesState, result: ProbeResult) -> None:
        key = (result.service, result.probe)
        probe = state.probes.get(key)
        if probe is None:
            probe = state.probes[key] = ProbeState(result.kind)
        probe.last = result
        probe.runs += 1
        durations = state.durations.get((result.service, result.kind))
        if durations is None:
            durations = state.durations[(result.service, result.kind)] = Histogram(DURATION_BUCKETS)
        durations.observe(result.duration_seconds)
        phases = state.phases.setdefault((result.service, result.kind), {})
        for phase, seconds in result.phases.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
        local = result.reason in LOCAL_REASONS
        if local:
            # This host failed, not the target: no reading, `outagewatch_probe_success`
            # keeps its last value (docs/runbooks.md), but the cause is still logged.
            _failure_detail(pipeline, probe, result)
        elif result.success is not None:
            if probe.last_conclusive is not None and probe.last_conclusive != result.success:
                # Transitions, not every run: a down endpoint must not flood the log.
                pipeline.log.warning(
                    "probe_up" if result.success else "probe_down",
                    service=result.service,
                    probe=result.probe,
                    reason=result.reason,
                    sub_reason=result.sub_reason,
                    detail=result.detail,
                )
                probe.detail_logged = (result.detail, pipeline.clock.monotonic())
            elif result.success is False:
                _failure_detail(pipeline, probe, result)
            probe.last_conclusive = result.success
        if result.success:
            probe.last_success_time = result.time
        elif result.success is None:
            probe.inconclusive += 1
        else:
            probe.failures += 1
            reasons = state.reasons.get(result.service)
            if reasons is None:
                reasons = state.reasons[result.service] = Counter()
            reasons[(result.reason or "unknown", result.sub_reason or "")] += 1
        probe.streaks.observe(result)
        if not local:  # no point on the success chart, no down/up event
            pipeline.state.history.probe(result)
        pipeline.state.signals.probe(result)

    def retain(
        self, state: ProbesState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        for pkey in set(state.probes) - probe_keys:
            del state.probes[pkey]
        kinds = {(service, probe.kind) for (service, _), probe in state.probes.items()}
        for dkey in set(state.durations) - kinds:
            del state.durations[dkey]
        for dkey in set(state.phases) - kinds:
            del state.phases[dkey]
        # Per service, so monotonic while the service keeps a probe: a removed probe's
        # failures stay counted.
        services = {service for service, _ in probe_keys}
        for service in set(state.reasons) - services:
            del state.reasons[service]

    def families(self, state: ProbesState) -> Iterable[Metric]:
        # Per service and kind, not per probe: 13 series a probe would double a
        # scrape at thousands of probes, and a 30 s probe gives a quantile little to use.
        fams = Families(
            "outagewatch_probe_total_duration_seconds",
            "outagewatch_probe_phase_seconds_total",
            "outagewatch_probe_failure_reasons_total",
        )
        for (service, kind), hist in sorted(state.durations.items()):
            fams.add_histogram(
                "outagewatch_probe_total_duration_seconds",
                [service, kind],
                hist.cumulative(),
                hist.sum,
            )
        for (service, kind), phases in sorted(state.phases.items()):
            for phase in PHASES:
                fams.add(
                    "outagewatch_probe_phase_seconds_total",
                    [service, kind, phase],
                    phases.get(phase, 0.0),
                )
        for service, reasons in sorted(state.reasons.items()):
            for (reason, sub_reason), count in sorted(reasons.items()):
                fams.add(
                    "outagewatch_probe_failure_reasons_total", [service, reason, sub_reason], count
                )
        return fams

    def views(self, state: ProbesState, ctx: PageContext) -> list[ProbeView]:
        return [
            probe_view(state, ctx.service, name, probe.enabled)
            for name, probe in ctx.service_config.probes.items()
        ]

    def page(self, state: ProbesState, ctx: PageContext) -> list[dict[str, Any]]:
        return [view.json() for view in self.views(state, ctx)]

    def card(self, fragment: list[dict[str, Any]]) -> str:
        return f"<h3>Probes</h3>{probe_rows(fragment)}"

    def evidence(self, state: ProbesState, ctx: EvidenceContext) -> Generator[None, None, Evidence]:
        probes = []
        for count, (name, probe_cfg) in enumerate(ctx.service_config.probes.items(), 1):
            if count % EVIDENCE_SLICE == 0:
                yield
            if probe_source_key(ctx.service, name) not in ctx.scheduled:
                continue  # another shard's, or disabled
            probe = state.probes.get((ctx.service, name))
            streaks = probe.streaks if probe is not None else ProbeStreaks()
            probes.append(probe_evidence(name, streaks, probe_cfg.interval, ctx.started))
        # The failure-ratio detector closes a bucket at most as often as probes run.
        shortest = min((p.reading.interval for p in probes), default=0.0)
        cadence = {"probes": max(FAILURE_BUCKET_S, shortest)}
        return Evidence(probes=tuple(probes), cadence=cadence)


def _failure_detail(pipeline: Folding, probe: ProbeState, result: ProbeResult) -> None:
    """Log why a probe fails: at its first failure, then when the cause changes.

    A probe failing from start has no up -> down change to log; a cause that
    keeps changing (a flapping error text) is logged at most once a minute.
    """
    logged, at = probe.detail_logged
    now = pipeline.clock.monotonic()
    if at > float("-inf") and (result.detail == logged or now - at < DETAIL_LOG_INTERVAL):
        return
    probe.detail_logged = (result.detail, now)
    pipeline.log.warning(
        "probe_failing",
        service=result.service,
        probe=result.probe,
        reason=result.reason,
        sub_reason=result.sub_reason,
        status_code=result.status_code,
        detail=result.detail,
    )


@dataclass(frozen=True)
class ProbeView:
    """One probe's row of the status page: its last result and when it last succeeded."""

    probe: str
    kind: str | None  # None until it has run
    result: str  # up | down | inconclusive | disabled | no result yet
    reason: str | None
    sub_reason: str | None
    detail: str | None
    status_code: int | None
    duration_seconds: float | None
    ttft_seconds: float | None
    time: float | None
    last_success: float | None

    def json(self) -> dict[str, Any]:
        document = asdict(self)
        document["time"] = iso_time(self.time)
        document["last_success"] = iso_time(self.last_success)
        return document


def probe_view(state: ProbesState, service: str, key: str, enabled: bool) -> ProbeView:
    """One probe's row of the status page."""
    probe = state.probes.get((service, key))
    last = probe.last if probe else None
    if not enabled:
        result = "disabled"
    elif last is None:
        result = "no result yet"
    elif last.success is None:
        result = "inconclusive"
    else:
        result = "up" if last.success else "down"
    return ProbeView(
        probe=key,
        kind=probe.kind if probe else None,
        result=result,
        reason=last.reason if last else None,
        sub_reason=last.sub_reason if last else None,
        detail=last.detail if last else None,
        status_code=last.status_code if last else None,
        duration_seconds=last.duration_seconds if last else None,
        ttft_seconds=last.chat.ttft_seconds if last and last.chat else None,
        time=last.time if last else None,
        last_success=probe.last_success_time if probe else None,
    )


def probe_rows(probes: list[dict[str, Any]]) -> str:
    """The probes' table of a service's card."""
    if not probes:
        return "<p>No probes configured.</p>"
    rows = []
    for probe in probes:
        result, code = probe["result"], probe["status_code"]
        failure = failure_text(probe["reason"], probe["sub_reason"], code)
        if result == "down":
            text, css = f"✕ down: {failure}", "down"
        elif result == "up":
            text, css = "✓ up", "up"
        elif result == "inconclusive":
            text, css = f"? inconclusive ({failure})", ""
        else:
            text, css = result, ""
        timing = "-"
        if probe["ttft_seconds"] is not None:
            timing = f"first token {probe['ttft_seconds']:.2f} s"
        elif probe["duration_seconds"] is not None:
            timing = f"{probe['duration_seconds'] * 1000:.0f} ms"
        why = ""
        if result in ("down", "inconclusive") and probe["detail"] not in (None, f"HTTP {code}"):
            why = f"<br><span class=detail>{escape(probe['detail'])}</span>"
        rows.append(
            f"<tr><td>{escape(probe['probe'])}</td><td class='{css}'>{escape(text)}{why}</td>"
            f"<td>{escape(timing)}</td><td>{escape(when_text(probe['last_success']))}</td></tr>"
        )
    return (
        "<table><thead><tr><th scope=col>Probe</th><th scope=col>Last result</th>"
        "<th scope=col>Timing</th><th scope=col>Last success</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
