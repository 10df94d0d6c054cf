"""The one list of lenses, the whole metric catalogue, and the construction of
sources from them.

Adding a lens is its package under ``lenses/`` and one line here; the config
schema (``config.py``), source construction, pipeline dispatch, ``retain``, the
state collector, the status page, the evidence for the disruption judge and the
metric catalogue all iterate ``LENSES``. The order is the order of each
service's fragments in ``/api/v1/status``.
"""

from __future__ import annotations

from typing import Any

from outagewatch.catalogue import CORE_CATALOGUE, MetricSpec
from outagewatch.config_types import Config
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.base import Lens
from outagewatch.lenses.chat import ChatLens
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.probe import ProbeLens
from outagewatch.lenses.reports import ReportsLens
from outagewatch.lenses.statuspage import StatusPageLens
from outagewatch.lenses.traffic import TrafficLens
from outagewatch.lenses.vantage import VantageLens
from outagewatch.sources import replica_shards
from outagewatch.sources.base import Source

LENSES: tuple[Lens[Any], ...] = (
    ProbeLens(),
    ChatLens(),
    StatusPageLens(),
    AppStoreLens(),
    ReportsLens(),
    TrafficLens(),
    VantageLens(),
)

# Every metric name, type, help and label set: the framework's, then each lens's own.
CATALOGUE: dict[str, MetricSpec] = {
    **CORE_CATALOGUE,
    **{spec.name: spec for lens in LENSES for spec in lens.metrics},
}


def build_sources(config: Config, chat_budget: ChatBudget | None = None) -> list[Source]:
    """Every enabled source the config describes that belongs to this shard.

    ``chat_budget`` is the daemon's ledger, kept across reloads; it takes the
    caps of this config.
    """
    shard = config.shard
    budget = chat_budget if chat_budget is not None else ChatBudget()
    budget.configure(config)
    sources: list[Source] = []
    for lens in LENSES:
        for placed in lens.sources(config, budget):
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
