"""Sources: one module per lens, all with the same shape (see base.py).

``build_sources`` turns a config into the list of scheduled sources; each
kind is looked up in one table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from outagewatch.budget import ChatBudget
from outagewatch.config import ChatProbeBase, Config, DnsControl
from outagewatch.sources.appstore import build_chart_sources
from outagewatch.sources.base import Source
from outagewatch.sources.chat import AnthropicProbeSource, ChatProbeSource, OpenAIProbeSource
from outagewatch.sources.control import DnsControlSource, HttpControlSource
from outagewatch.sources.http import HttpProbeSource
from outagewatch.sources.prometheus import PrometheusQuerySource
from outagewatch.sources.statuspage import StatusPageSource

PROBE_KINDS: dict[str, Callable[[str, str, object], Source]] = {
    "http": HttpProbeSource,  # type: ignore[dict-item]
}
# Chat probes also take the daemon's spending ledger: caps span a service's probes.
CHAT_PROBE_KINDS: dict[str, type[ChatProbeSource]] = {
    "anthropic": AnthropicProbeSource,
    "openai": OpenAIProbeSource,
}


def hashmod(key: str, count: int) -> int:
    """The shard of ``key``: the same function as Prometheus' ``hashmod`` relabel action."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[8:], "big") % count


def replica_shards(key: str, count: int, replicas: int) -> list[int]:
    """The shards that run ``key``: its ``hashmod`` shard, then the next ones (mod count).

    The first is Prometheus' ``hashmod`` assignment, so one replica is plain sharding.
    """
    first = hashmod(key, count)
    return [(first + j) % count for j in range(replicas)]


def build_sources(config: Config, chat_budget: ChatBudget | None = None) -> list[Source]:
    """Every enabled source the config describes that belongs to this shard.

    ``chat_budget`` is the daemon's ledger, kept across reloads; it takes the
    caps of this config.
    """
    shard = config.shard

    def mine(key: str, splittable: bool) -> bool:
        if splittable or shard.shard_all_sources:
            return shard.index in replica_shards(key, shard.count, shard.replicas)
        return shard.index == 0  # one instance owns the sources that are not split

    budget = chat_budget if chat_budget is not None else ChatBudget()
    budget.configure(config)
    sources: list[Source] = []
    for service_key, service in config.services.items():
        for probe_key, probe in service.probes.items():
            if not probe.enabled:
                continue
            source: Source
            if isinstance(probe, ChatProbeBase):
                chat_kind = CHAT_PROBE_KINDS[probe.kind]
                source = chat_kind(service_key, probe_key, probe, budget)
            else:
                source = PROBE_KINDS[probe.kind](service_key, probe_key, probe)
            if mine(source.key, splittable=True):
                sources.append(source)
        for page_key, page in service.status_pages.items():
            if page.enabled:
                status_source = StatusPageSource(service_key, page_key, page)
                if mine(status_source.key, splittable=False):
                    sources.append(status_source)
        for query_key, query in service.traffic.items():
            if query.enabled:
                traffic_source = PrometheusQuerySource(service_key, query_key, query)
                if mine(traffic_source.key, splittable=False):
                    sources.append(traffic_source)
    sources.extend(s for s in build_chart_sources(config) if mine(s.key, splittable=False))
    # Every instance judges its own vantage point: controls are never split.
    for target, control in config.vantage.controls.items():
        if isinstance(control, DnsControl):
            sources.append(DnsControlSource(target, control))
        else:
            sources.append(HttpControlSource(target, control))
    return sources
