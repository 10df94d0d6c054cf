"""/metrics as the daemon serves it (``MetricsPage``), parsed back with
prometheus_client's own text parser, for tests that read metric values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from outagewatch.exposition import MetricsPage
from outagewatch.metrics import StateCollector
from outagewatch.pipeline import State
from outagewatch.views import StatusQuery


class Scrape:
    """One rendered page: its text, its families, its sample values by labels."""

    def __init__(self, text: bytes) -> None:
        self.text = text.decode()
        self.families = list(text_string_to_metric_families(self.text))

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        wanted = dict(labels or {})
        for family in self.families:
            for sample in family.samples:
                if sample.name == name and sample.labels == wanted:
                    return float(sample.value)
        return None


def metrics_page(state: State) -> MetricsPage:
    """The page the daemon serves for ``state`` (minus the process collectors)."""
    registry = CollectorRegistry()
    registry.register(StateCollector(StatusQuery(state), "t", "t", "3"))
    return MetricsPage(StatusQuery(state), registry)


async def scrape(state: State) -> Scrape:
    return Scrape(await metrics_page(state).render())
