"""The vantage lens (`vantage -> controls`): is our own network carrying traffic?

Control targets are not services: a name to resolve or a reference URL to
request (``source.py``), run by every instance of a fleet. Their streaks and the
last judgement of this vantage point (``detect/vantage.py``) decide whether
local-class probe failures say anything about a service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.config_types import DnsControl, HttpControl, VantageConfig
from outagewatch.detect.disruption import Reading
from outagewatch.detect.vantage import HEALTHY, ControlEvidence, ControlStreak, VantageVerdict
from outagewatch.keys import control_source_key
from outagewatch.lenses.base import Folding, Lens, Placed
from outagewatch.lenses.vantage.source import (
    DnsControlSource,
    HttpControlSource,
)
from outagewatch.observations import ControlResult

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget


@dataclass
class VantageState:
    """The control targets' streaks and the last judgement of our own vantage point."""

    controls: dict[str, ControlStreak] = field(default_factory=dict)
    verdict: VantageVerdict = HEALTHY


class VantageLens(Lens[VantageState]):
    name = "vantage"
    config_models = (VantageConfig, DnsControl, HttpControl)
    observations = (ControlResult,)

    def new_state(self) -> VantageState:
        return VantageState()

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for target, control in config.vantage.controls.items():
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
        fams = Families(
            "outagewatch_vantage_healthy",
            "outagewatch_vantage_control_up",
            "outagewatch_vantage_services_failing_locally_ratio",
        )
        fams.add("outagewatch_vantage_healthy", [], int(state.verdict.healthy))
        fams.add(
            "outagewatch_vantage_services_failing_locally_ratio", [], state.verdict.local_share
        )
        for target in sorted(state.controls):
            up = int(target not in state.verdict.failing_controls)
            fams.add("outagewatch_vantage_control_up", [target], up)
        return fams


def control_evidence(state: VantageState, config: Config, started: float) -> list[ControlEvidence]:
    """Each configured control target's reading and trailing failed runs."""
    out = []
    for target, control in config.vantage.controls.items():
        streak = state.controls.get(target, ControlStreak())
        reading = Reading(streak.last, control.interval, started)
        out.append(ControlEvidence(target, reading, streak.failing))
    return out
