"""The chat lens (`kind: anthropic | openai` probes): a tiny streamed chat completion.

Sources: one per chat probe (``source.py``), spending from the daemon's ledger
(``budget.py``) so caps span a service's probes. Their ``ProbeResult`` is kept
by the probe lens like any probe's; this lens keeps what only chat measures
(time to first token, chunk gaps, tokens/s, rate-limit headroom, budget).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric

from outagewatch.catalogue import Families
from outagewatch.config_types import AnthropicProbe, ChatProbeBase, OpenAIProbe
from outagewatch.detect.tracker import EVIDENCE_SLICE
from outagewatch.histogram import Histogram
from outagewatch.keys import probe_source_key
from outagewatch.lenses.base import Evidence, EvidenceContext, Folding, Lens, Placed
from outagewatch.lenses.chat.source import (
    AnthropicProbeSource,
    ChatProbeSource,
    OpenAIProbeSource,
)
from outagewatch.observations import CHAT_OUTCOMES, ChatBudgetStatus, ChatStats, ProbeResult

if TYPE_CHECKING:
    from outagewatch.config_types import Config
    from outagewatch.lenses.chat.budget import ChatBudget

# Time to first token: a healthy chatbot answers in well under a few seconds.
TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
CHAT_PROBE_KINDS: dict[str, type[ChatProbeSource]] = {
    "anthropic": AnthropicProbeSource,
    "openai": OpenAIProbeSource,
}


@dataclass
class ChatState:
    """What we know of one chat probe beyond the shared probe state."""

    last: ChatStats | None = None
    last_duration: float | None = None
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    # Runs by outcome class: the probe's error class is what chat probes are for
    # (overloaded, not quota or key), and the overloaded alert is per probe.
    outcomes: Counter[str] = field(default_factory=Counter)
    budget: ChatBudgetStatus | None = None


# Each chat probe's state, by (service, probe).
ChatsState = dict[tuple[str, str], ChatState]


class ChatLens(Lens[ChatsState]):
    name = "chat"
    config_models = (AnthropicProbe, OpenAIProbe)
    observations = (ProbeResult, ChatBudgetStatus)

    def new_state(self) -> ChatsState:
        return {}

    def sources(self, config: Config, budget: ChatBudget) -> Iterable[Placed]:
        for service, service_config in config.services.items():
            for name, probe in service_config.probes.items():
                if probe.enabled and isinstance(probe, ChatProbeBase):
                    source = CHAT_PROBE_KINDS[probe.kind](service, name, probe, budget)
                    yield Placed(source, "split")

    def apply(self, pipeline: Folding, state: ChatsState, observation: Any) -> None:
        if isinstance(observation, ChatBudgetStatus):
            chat = state.setdefault((observation.service, observation.probe), ChatState())
            chat.budget = observation
            return
        result: ProbeResult = observation
        stats = result.chat
        if stats is None:
            return  # not a chat probe's run
        chat = state.setdefault((result.service, result.probe), ChatState())
        chat.last = stats
        chat.last_duration = result.duration_seconds
        chat.outcomes[stats.outcome] += 1
        if stats.ttft_seconds is not None:
            chat.ttft.observe(stats.ttft_seconds)

    def retain(
        self, state: ChatsState, source_keys: set[str], probe_keys: set[tuple[str, str]]
    ) -> None:
        for pkey in set(state) - probe_keys:
            del state[pkey]

    def families(self, state: ChatsState) -> Iterable[Metric]:
        fams = Families(
            "outagewatch_chat_ttft_seconds",
            "outagewatch_chat_duration_seconds",
            "outagewatch_chat_max_chunk_gap_seconds",
            "outagewatch_chat_output_tokens_per_second",
            "outagewatch_chat_outcome",
            "outagewatch_chat_runs_total",
            "outagewatch_chat_ratelimit_remaining_ratio",
            "outagewatch_chat_retry_after_seconds",
            "outagewatch_chat_should_retry",
            "outagewatch_chat_budget_remaining_ratio",
            "outagewatch_chat_budget_exhausted",
        )
        for (service, probe_name), chat in sorted(state.items()):
            labels = [service, probe_name]
            last = chat.last
            if last is not None:
                hist = chat.ttft
                fams.add_histogram(
                    "outagewatch_chat_ttft_seconds", labels, hist.cumulative(), hist.sum
                )
                if chat.last_duration is not None:
                    fams.add("outagewatch_chat_duration_seconds", labels, chat.last_duration)
                if last.max_chunk_gap_seconds is not None:
                    fams.add(
                        "outagewatch_chat_max_chunk_gap_seconds", labels, last.max_chunk_gap_seconds
                    )
                if last.output_tokens_per_second is not None:
                    fams.add(
                        "outagewatch_chat_output_tokens_per_second",
                        labels,
                        last.output_tokens_per_second,
                    )
                # Every class from the first run, so a rate sees the first overloaded run.
                for outcome in CHAT_OUTCOMES:
                    fams.add(
                        "outagewatch_chat_outcome", [*labels, outcome], int(outcome == last.outcome)
                    )
                    fams.add(
                        "outagewatch_chat_runs_total", [*labels, outcome], chat.outcomes[outcome]
                    )
                for resource, ratio in sorted(last.ratelimit_remaining.items()):
                    fams.add(
                        "outagewatch_chat_ratelimit_remaining_ratio", [*labels, resource], ratio
                    )
                if last.retry_after_seconds is not None:
                    fams.add(
                        "outagewatch_chat_retry_after_seconds", labels, last.retry_after_seconds
                    )
                if last.should_retry is not None:
                    fams.add("outagewatch_chat_should_retry", labels, int(last.should_retry))
            if chat.budget is not None:
                for resource, ratio in sorted(chat.budget.remaining.items()):
                    fams.add("outagewatch_chat_budget_remaining_ratio", [*labels, resource], ratio)
                fams.add("outagewatch_chat_budget_exhausted", labels, int(chat.budget.exhausted))
        return fams

    def evidence(self, state: ChatsState, ctx: EvidenceContext) -> Generator[None, None, Evidence]:
        intervals = []
        for count, (name, probe_cfg) in enumerate(ctx.service_config.probes.items(), 1):
            if count % EVIDENCE_SLICE == 0:
                yield
            scheduled = probe_source_key(ctx.service, name) in ctx.scheduled
            if scheduled and isinstance(probe_cfg, ChatProbeBase):
                intervals.append(probe_cfg.interval)
        if not intervals:
            return Evidence()
        # The ttft and latency detectors get a point per chat probe run.
        return Evidence(cadence={"chat": min(intervals)})
