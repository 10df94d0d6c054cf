"""The vantage lens (`vantage -> controls`): is our own network carrying traffic?

All of it is here and in ``source.py``: its config (``VantageConfig``, the
top-level ``vantage`` field, and the control models), its observation
(``ControlResult``) and its metric families' catalogue entries.

Control targets are not services: a name to resolve or a reference URL to
request (``source.py``), run by every instance of a fleet. Their streaks and the
last judgement of this vantage point (``detect/vantage.py``) decide whether
local-class probe failures say anything about a service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

from prometheus_client.core import Metric
from pydantic import Field

from outagewatch.catalogue import Families, MetricSpec
from outagewatch.config_types import Duration, HttpUrl, Model, Name, Scheduled
from outagewatch.detect.disruption import Reading
from outagewatch.detect.vantage import HEALTHY, ControlEvidence, ControlStreak, VantageVerdict
from outagewatch.keys import control_source_key
from outagewatch.lenses.base import Folding, Lens, Placed
from outagewatch.observations import LensObservation

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget


class DnsControl(Scheduled):
    """A control target that resolves a name with the daemon's resolver."""

    kind: Literal["dns"] = Field(description="Resolve `host` once per run.")
    host: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9.-]+$",
        description="A name that always resolves (not a watched service's).",
    )
    interval: Duration = Field(default=30.0, description="How often the name is resolved.")
    timeout: Duration = Field(default=5.0, description="Longest a resolution may take.")


class HttpControl(Scheduled):
    """A control target that requests a reference URL: any HTTP answer is a success."""

    kind: Literal["http"] = Field(description="One HTTP(S) request per run.")
    url: HttpUrl = Field(description="A reference URL that is not a watched service.")
    tls_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle to trust instead of the system's."
    )
    interval: Duration = Field(default=30.0, description="How often the URL is requested.")
    timeout: Duration = Field(default=10.0, description="Longest a request may take.")


ControlConfig = Annotated[DnsControl | HttpControl, Field(discriminator="kind")]


class VantageConfig(Model):
    """How the daemon judges its own network (daemon/outagewatch/detect/vantage.py)."""

    controls: dict[Name, ControlConfig] = Field(
        default_factory=dict,
        description="Control targets by name: names and URLs that are not watched services; "
        "none by default (the services' correlation alone then judges).",
    )
    control_failure_runs: int = Field(
        default=2, ge=1, le=100, description="Consecutive failed runs before a control fails."
    )
    local_failure_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the judged services failing with local-class reasons "
        "(dns, connect, local, unknown CA) that makes the vantage point unhealthy.",
    )
    min_services: int = Field(
        default=3,
        ge=1,
        description="Fewest services with a fresh probe reading for the correlation to count.",
    )


@dataclass(frozen=True, slots=True)
class ControlResult(LensObservation):
    """One run of a vantage control target (not a service): did our network carry it?"""

    target: str
    time: float
    success: bool
    reason: str | None = None
    detail: str | None = None


HEALTHY_METRIC = MetricSpec(
    "outagewatch_vantage_healthy",
    "gauge",
    "Whether this daemon's own network looks healthy (1) or failing (0): then services "
    "failing locally are unknown, not disrupted.",
    (),
)
CONTROL_UP = MetricSpec(
    "outagewatch_vantage_control_up",
    "gauge",
    "Whether the vantage control target answered (1) or has failed enough runs to "
    "count (0); absent until its first run.",
    ("control",),
)
LOCAL_RATIO = MetricSpec(
    "outagewatch_vantage_services_failing_locally_ratio",
    "gauge",
    "Share of the services with a fresh probe reading whose probes fail with local-class "
    "reasons (dns, connect, local, unknown CA).",
    (),
)

# The top-level field that holds this lens's config.
FIELD = "vantage"


def vantage_config(config: Config) -> VantageConfig:
    """The config's `vantage` section."""
    return cast(VantageConfig, Lens.section(config, FIELD))


# source.py reads the records above, so it is imported after them.
from outagewatch.lenses.vantage.source import DnsControlSource, HttpControlSource  # noqa: E402


@dataclass
class VantageState:
    """The control targets' streaks and the last judgement of our own vantage point."""

    controls: dict[str, ControlStreak] = field(default_factory=dict)
    verdict: VantageVerdict = HEALTHY


class VantageLens(Lens[VantageState]):
    name = "vantage"
    config_models = (VantageConfig, DnsControl, HttpControl)
    config_fields = {
        FIELD: (
            VantageConfig,
            Field(
                default=VantageConfig(),
                description="Control targets and correlation that tell our network's failure "
                "from the providers'.",
            ),
        )
    }
    kind_unions = (ControlConfig,)
    observations = (ControlResult,)
    metrics = (HEALTHY_METRIC, CONTROL_UP, LOCAL_RATIO)

    def new_state(self) -> VantageState:
        return VantageState()

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for target, control in vantage_config(config).controls.items():
            if isinstance(control, DnsControl):
                yield Placed(DnsControlSource(target, control), "every")
            else:
                yield Placed(HttpControlSource(target, control), "every")

    def apply(self, pipeline: Folding, state: VantageState, result: ControlResult) -> None:
        streak = state.controls.setdefault(result.target, ControlStreak())
        if streak.last is not None and (streak.failing == 0) != result.success:
            pipeline.log.warning(
                "control_up" if result.success else "control_down",
                control=result.target,
                reason=result.reason,
                detail=result.detail,
            )
        streak.observe(result.time, result.success, result.reason, result.detail)

    def retain(
        self, state: VantageState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        controls = state.controls
        for target in [t for t in controls if control_source_key(t) not in source_keys]:
            del controls[target]

    def families(self, state: VantageState) -> Iterable[Metric]:
        fams = Families(HEALTHY_METRIC, CONTROL_UP, LOCAL_RATIO)
        fams.add(HEALTHY_METRIC.name, [], int(state.verdict.healthy))
        fams.add(LOCAL_RATIO.name, [], state.verdict.local_share)
        for target in sorted(state.controls):
            up = int(target not in state.verdict.failing_controls)
            fams.add(CONTROL_UP.name, [target], up)
        return fams


def control_evidence(state: VantageState, config: Config, started: float) -> list[ControlEvidence]:
    """Each configured control target's reading and trailing failed runs."""
    out = []
    for target, control in vantage_config(config).controls.items():
        streak = state.controls.get(target, ControlStreak())
        reading = Reading(streak.last, control.interval, started)
        out.append(ControlEvidence(target, reading, streak.failing))
    return out
