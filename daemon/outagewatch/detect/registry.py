"""The daemon's spike signals: one row each, the one place a signal is declared.

A row says which model judges the signal (`models.py`), which disruption reason
an active spike of it sets and for which lens, how often its points come (the
`cadence`, for freshness) and what it watches in words (status page). The
disruption rules, the evidence, the status page and the metrics read this
table; where the values come from is the only other place a new signal needs
(`signals.py` for probe, chat, report and chart observations).

Traffic queries (`traffic/<query>`) are not rows: one two-sided detector per
configured query (`signals.detector_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from outagewatch.detect.models import MODELS, SignalModel


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """One spike signal of a service.

    `cadence` names where its points come from, for how long a reading stays
    fresh: `reports` (5-minute buckets), `probes` (1-minute failure buckets, or
    the probe interval if longer), `chat` (the chat probes' interval),
    `appstore` (the App Store interval).
    """

    model: SignalModel
    reason: str
    lens: str
    cadence: str
    text: str


SIGNAL_TABLE: Final[dict[str, SignalSpec]] = {
    "failure_ratio": SignalSpec(
        MODELS["failure_ratio"], "failure_ratio_spike", "probes", "probes", "probe failures"
    ),
    "ttft": SignalSpec(MODELS["latency"], "ttft_spike", "chat", "chat", "first-token times"),
    "latency": SignalSpec(MODELS["latency"], "latency_spike", "chat", "chat", "answer times"),
    "reports": SignalSpec(MODELS["reports"], "report_spike", "reports", "reports", "user reports"),
    "rank": SignalSpec(MODELS["rank"], "rank_surge", "appstore", "appstore", "App Store rank"),
}
