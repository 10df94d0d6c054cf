"""Sources: one module per lens, all with the same shape (see base.py).

``build_sources`` turns a config into the list of scheduled sources; each
kind is looked up in one table.
"""

from __future__ import annotations

from collections.abc import Callable

from outagewatch.budget import ChatBudget
from outagewatch.config import ChatProbeBase, Config
from outagewatch.sources.base import Source
from outagewatch.sources.chat import AnthropicProbeSource, ChatProbeSource, OpenAIProbeSource
from outagewatch.sources.http import HttpProbeSource

PROBE_KINDS: dict[str, Callable[[str, str, object], Source]] = {
    "http": HttpProbeSource,  # type: ignore[dict-item]
}
# Chat probes also take the daemon's spending ledger: caps span a service's probes.
CHAT_PROBE_KINDS: dict[str, type[ChatProbeSource]] = {
    "anthropic": AnthropicProbeSource,
    "openai": OpenAIProbeSource,
}


def build_sources(config: Config, chat_budget: ChatBudget | None = None) -> list[Source]:
    """Every enabled source the config describes.

    ``chat_budget`` is the daemon's ledger, kept across reloads; it takes the
    caps of this config.
    """
    budget = chat_budget if chat_budget is not None else ChatBudget()
    budget.configure(config)
    sources: list[Source] = []
    for service_key, service in config.services.items():
        for probe_key, probe in service.probes.items():
            if not probe.enabled:
                continue
            if isinstance(probe, ChatProbeBase):
                chat_kind = CHAT_PROBE_KINDS[probe.kind]
                sources.append(chat_kind(service_key, probe_key, probe, budget))
            else:
                sources.append(PROBE_KINDS[probe.kind](service_key, probe_key, probe))
    return sources
