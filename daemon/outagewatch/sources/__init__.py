"""Sources: one module per lens, all with the same shape (see base.py).

``build_sources`` turns a config into the list of scheduled sources; each
kind is looked up in one table.
"""

from __future__ import annotations

from collections.abc import Callable

from outagewatch.config import Config
from outagewatch.sources.base import Source
from outagewatch.sources.http import HttpProbeSource
from outagewatch.sources.statuspage import StatusPageSource

PROBE_KINDS: dict[str, Callable[[str, str, object], Source]] = {
    "http": HttpProbeSource,  # type: ignore[dict-item]
}


def build_sources(config: Config) -> list[Source]:
    """Every enabled source the config describes."""
    sources: list[Source] = []
    for service_key, service in config.services.items():
        for probe_key, probe in service.probes.items():
            if probe.enabled:
                sources.append(PROBE_KINDS[probe.kind](service_key, probe_key, probe))
        for page_key, page in service.status_pages.items():
            if page.enabled:
                sources.append(StatusPageSource(service_key, page_key, page))
    return sources
