"""The traffic lens (`services -> <name> -> traffic`): a service's own traffic from Prometheus.

State: the last sample per (service, query). Its detector (a spike signal per
query, ``traffic_signal``) lives with the other signals; this lens feeds it and
says which way a spike goes (a drop or a surge).
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.clock import iso_time
from outagewatch.config import TrafficQuery
from outagewatch.detect.disruption import Reading, SpikeEvidence
from outagewatch.detect.signals import traffic_signal
from outagewatch.keys import traffic_source_key
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext, Placed
from outagewatch.lenses.traffic.source import PrometheusQuerySource
from outagewatch.observations import TrafficSample

if TYPE_CHECKING:
    from outagewatch.config import Config
    from outagewatch.lenses.chat.budget import ChatBudget

# The last sample of each query, by (service, query).
TrafficState = dict[tuple[str, str], TrafficSample]


@dataclass(frozen=True)
class TrafficView:
    """One traffic query on the status page: its last value and its detector's state."""

    query: str
    enabled: bool
    value: float | None
    time: float | None
    state: str  # waiting | normal | drop | surge

    def json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "enabled": self.enabled,
            "value": self.value,
            "time": iso_time(self.time),
            "state": self.state,
        }


class TrafficLens(Lens[TrafficState]):
    name = "traffic"
    config_models = (TrafficQuery,)
    observations = (TrafficSample,)
    kinds = frozenset({PrometheusQuerySource.kind})
    page_key = "traffic"
    card_position = 4

    def new_state(self) -> TrafficState:
        return {}

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for service, service_config in config.services.items():
            for name, query in service_config.traffic.items():
                if query.enabled:
                    yield Placed(PrometheusQuerySource(service, name, query), "owner")

    def apply(self, pipeline: Folding, state: TrafficState, sample: TrafficSample) -> None:
        state[(sample.service, sample.query)] = sample
        pipeline.state.signals.traffic(sample.service, sample.query, sample.time, sample.value)

    def retain(
        self, state: TrafficState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        for key in [k for k in state if traffic_source_key(*k) not in source_keys]:
            del state[key]

    def families(self, state: TrafficState) -> Iterable[Metric]:
        fams = Families("outagewatch_traffic_value", "outagewatch_traffic_series")
        for (service, query), sample in sorted(state.items()):
            fams.add("outagewatch_traffic_value", [service, query], sample.value)
            fams.add("outagewatch_traffic_series", [service, query], sample.series)
        return fams

    def views(self, state: TrafficState, ctx: PageContext) -> list[TrafficView]:
        out = []
        for name, query in ctx.service_config.traffic.items():
            sample = state.get((ctx.service, name))
            status = ctx.signals.status.get((ctx.service, traffic_signal(name)))
            if status is None:
                verdict = "waiting"
            elif status.verdict.active:
                verdict = "drop" if status.direction < 0 else "surge"
            else:
                verdict = "normal"
            value, time = (sample.value, sample.time) if sample else (None, None)
            out.append(TrafficView(name, query.enabled, value, time, verdict))
        return out

    def page(self, state: TrafficState, ctx: PageContext) -> list[dict[str, Any]]:
        return [view.json() for view in self.views(state, ctx)]

    def card(self, fragment: list[dict[str, Any]]) -> str:
        if not fragment:
            return ""
        items = []
        for t in fragment:
            value = "not read yet" if t["value"] is None else f"{t['value']:.4g}"
            items.append(f"{escape(t['query'])}: {escape(value)} ({escape(t['state'])})")
        return f"<h3>Traffic</h3><p class=traffic>{', '.join(items)}</p>"

    def evidence(
        self, state: TrafficState, ctx: EvidenceContext
    ) -> Generator[None, None, Evidence]:
        spikes = {}
        for name, query in ctx.service_config.traffic.items():
            if traffic_source_key(ctx.service, name) not in ctx.scheduled:
                continue
            signal = traffic_signal(name)
            status = ctx.signals.status.get((ctx.service, signal))
            if status is not None:
                reading = Reading(status.last_time, query.interval, ctx.started)
                reason = "traffic_drop" if status.direction < 0 else "traffic_spike"
                spikes[signal] = SpikeEvidence(status.verdict.active, reading, reason)
        return Evidence(spikes=spikes)
        yield
