"""The one list of lenses, and what iterates it to build sources.

Adding a lens is its package under ``lenses/`` and one line here; the config
union, source construction, pipeline dispatch, ``retain``, the state collector,
the status page and the evidence for the disruption judge all iterate ``LENSES``.
The order is the order of each service's fragments in ``/api/v1/status``.
"""

from __future__ import annotations

from typing import Any

from outagewatch.budget import ChatBudget
from outagewatch.config import ChatProbeBase, Config
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.base import Lens, Placed
from outagewatch.lenses.statuspage import StatusPageLens
from outagewatch.lenses.traffic import TrafficLens
from outagewatch.lenses.vantage import VantageLens
from outagewatch.sources import replica_shards
from outagewatch.sources.base import Source
from outagewatch.sources.chat import AnthropicProbeSource, ChatProbeSource, OpenAIProbeSource
from outagewatch.sources.http import HttpProbeSource

LENSES: tuple[Lens[Any], ...] = (
    StatusPageLens(),
    AppStoreLens(),
    TrafficLens(),
    VantageLens(),
)


def build_sources(config: Config, chat_budget: ChatBudget | None = None) -> list[Source]:
    """Every enabled source the config describes that belongs to this shard.

    ``chat_budget`` is the daemon's ledger, kept across reloads; it takes the
    caps of this config.
    """
    shard = config.shard
    budget = chat_budget if chat_budget is not None else ChatBudget()
    budget.configure(config)
    sources: list[Source] = []
    for placed in _unmoved_sources(config, budget):
        key = placed.source.key
        if placed.placement == "every":
            mine = True  # every instance judges its own vantage point
        elif placed.placement == "split" or shard.shard_all_sources:
            mine = shard.index in replica_shards(key, shard.count, shard.replicas)
        else:
            mine = shard.index == 0  # one instance owns the sources that are not split
        if mine:
            sources.append(placed.source)
    return sources


# Chat probes also take the daemon's spending ledger: caps span a service's probes.
CHAT_PROBE_KINDS: dict[str, type[ChatProbeSource]] = {
    "anthropic": AnthropicProbeSource,
    "openai": OpenAIProbeSource,
}


def _unmoved_sources(config: Config, budget: ChatBudget) -> list[Placed]:
    placed: list[Placed] = []
    for service_key, service in config.services.items():
        for probe_key, probe in service.probes.items():
            if not probe.enabled:
                continue
            source: Source
            if isinstance(probe, ChatProbeBase):
                source = CHAT_PROBE_KINDS[probe.kind](service_key, probe_key, probe, budget)
            else:
                source = HttpProbeSource(service_key, probe_key, probe)
            placed.append(Placed(source, "split"))
    for lens in LENSES:
        placed.extend(lens.sources(config, budget))
    return placed
