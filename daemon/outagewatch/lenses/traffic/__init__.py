"""The traffic lens (`services -> <name> -> traffic`): a service's own traffic from Prometheus.

All of it is here and in ``source.py``: its config model (``TrafficQuery``, the
``traffic`` field of a service), its observation (``TrafficSample``), its metric
families' catalogue entries, its state, page fragment and evidence.

State: the last sample per (service, query). Its detector (a spike signal per
query, ``traffic_signal``) lives with the other signals; this lens feeds it and
says which way a spike goes (a drop or a surge).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from prometheus_client.core import Metric
from pydantic import Field, field_validator, model_validator

from outagewatch.catalogue import Families, MetricSpec
from outagewatch.clock import iso_time
from outagewatch.config_types import (
    CREDENTIAL_NAME,
    Duration,
    FileChecks,
    HttpUrl,
    Interval,
    Name,
    Scheduled,
    ServiceConfig,
)
from outagewatch.detect.disruption import Reading, SpikeEvidence
from outagewatch.detect.signals import traffic_signal
from outagewatch.keys import traffic_source_key
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, PageContext, Placed
from outagewatch.observations import LensObservation

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget


class TrafficQuery(Scheduled):
    """A PromQL instant query against a Prometheus HTTP API: the service's own traffic.

    The query should return one series (aggregate it: ``sum(rate(...))``); a
    result of up to ``max_series`` series is summed, more fails the run.
    """

    kind: Literal["prometheus"] = Field(
        default="prometheus", description="The source kind: a Prometheus instant query."
    )
    enabled: bool = Field(default=True, description="Disabled queries are validated but not run.")
    url: HttpUrl = Field(
        description="The Prometheus server's base address (the API is under /api/v1/query)."
    )
    query: str = Field(min_length=1, max_length=4096, description="The PromQL expression.")
    interval: Interval = Field(default=60.0, description="How often the query runs.")
    timeout: Duration = Field(
        default=10.0, description="Longest a run may take; at most the interval."
    )
    max_series: int = Field(
        default=1, ge=1, le=1000, description="More series in the result than this fails the run."
    )
    max_body_bytes: int = Field(
        default=1 << 20, gt=0, description="Read at most this much of the answer."
    )
    max_backoff: Duration = Field(
        default=900.0, description="Longest wait after repeated 429/5xx answers."
    )
    auth: Literal["none", "bearer", "basic"] = Field(
        default="none",
        description="`bearer`: the secret is a bearer token; `basic`: the secret is the password "
        "of `username`.",
    )
    username: str | None = Field(default=None, description="The basic auth user name.")
    secret_file: Path | None = Field(
        default=None, description="A file holding the bearer token or password."
    )
    secret_credential: str | None = Field(
        default=None,
        description="The systemd credential holding the bearer token or password (the name "
        "given to LoadCredential=).",
    )

    @field_validator("secret_credential")
    @classmethod
    def _credential_name(cls, name: str | None) -> str | None:
        if name is not None and not re.match(CREDENTIAL_NAME, name):
            raise ValueError(f"{name!r} is not a systemd credential name, nor a path")
        return name

    @model_validator(mode="after")
    def _auth_consistent(self) -> TrafficQuery:
        secrets = [k for k in ("secret_file", "secret_credential") if getattr(self, k)]
        if self.auth == "none" and (secrets or self.username):
            raise ValueError(
                "auth: none sends no credential; remove " + (secrets or ["username"])[0]
            )
        if self.auth != "none" and len(secrets) != 1:
            raise ValueError(
                f"auth: {self.auth} needs exactly one of secret_file or secret_credential"
            )
        if (self.auth == "basic") != bool(self.username):
            raise ValueError("username is needed with auth: basic, and only with it")
        return self


@dataclass(frozen=True, slots=True)
class TrafficSample(LensObservation):
    """One instant query of a service's traffic: the value (summed over its series)."""

    service: str
    query: str
    time: float
    value: float
    series: int


VALUE = MetricSpec(
    "outagewatch_traffic_value",
    "gauge",
    "Last value of the service's traffic query (its series summed), in the query's unit.",
    ("service", "query"),
)
SERIES = MetricSpec(
    "outagewatch_traffic_series",
    "gauge",
    "Series in the last result of the service's traffic query.",
    ("service", "query"),
)

# The field of a service that holds its traffic queries.
FIELD = "traffic"


def queries(service: ServiceConfig) -> dict[str, TrafficQuery]:
    """A service's traffic queries, by name."""
    return cast(dict[str, TrafficQuery], Lens.section(service, FIELD))


# source.py reads the records above, so it is imported after them.
from outagewatch.lenses.traffic.source import PrometheusQuerySource  # noqa: E402

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
    service_fields = {
        FIELD: (
            dict[Name, TrafficQuery],
            Field(
                default_factory=dict,
                description="Traffic queries by name (the `query` label): the service's own "
                "request rate, error rate or latency from a Prometheus (see docs/traffic.md).",
            ),
        )
    }
    observations = (TrafficSample,)
    metrics = (VALUE, SERIES)
    kinds = frozenset({PrometheusQuerySource.kind})
    page_key = "traffic"
    card_position = 4

    def new_state(self) -> TrafficState:
        return {}

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for service, service_config in config.services.items():
            for name, query in queries(service_config).items():
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
        fams = Families(VALUE, SERIES)
        for (service, query), sample in sorted(state.items()):
            fams.add(VALUE.name, [service, query], sample.value)
            fams.add(SERIES.name, [service, query], sample.series)
        return fams

    def check_files(self, config: Config, files: FileChecks) -> None:
        for service_name, service in config.services.items():
            for query_name, query in queries(service).items():
                if not query.enabled:
                    continue
                key = f"services -> {service_name} -> traffic -> {query_name}"
                if query.secret_file is not None:
                    files.readable(f"{key} -> secret_file", query.secret_file)
                files.credential(f"{key} -> secret_credential", query.secret_credential)

    def signal_keys(self, config: Config) -> Iterable[tuple[str, str]]:
        for service, service_config in config.services.items():
            for name, query in queries(service_config).items():
                if query.enabled:
                    yield (service, name)

    def views(self, state: TrafficState, ctx: PageContext) -> list[TrafficView]:
        out = []
        for name, query in queries(ctx.service_config).items():
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
        for name, query in queries(ctx.service_config).items():
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
