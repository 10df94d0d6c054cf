"""The signal table is the one place a spike signal is declared: everything else reads it."""

from __future__ import annotations

from outagewatch.detect import BACKTEST_SIGNALS
from outagewatch.detect.disruption import REASON_LENS, REASONS, SPIKE_REASONS
from outagewatch.detect.registry import SIGNAL_TABLE
from outagewatch.detect.signals import SIGNAL_DETECTORS, detector_kind
from outagewatch.web.status import SIGNAL_TEXT


def test_every_signal_of_the_table_reaches_the_rules_the_detectors_and_the_page() -> None:
    assert set(SIGNAL_TABLE) == {"reports", "failure_ratio", "ttft", "latency", "rank"}
    for signal, spec in SIGNAL_TABLE.items():
        assert SPIKE_REASONS[signal] == spec.reason
        assert spec.reason in REASONS
        assert REASON_LENS[spec.reason] == spec.lens
        assert detector_kind(signal) == SIGNAL_DETECTORS[signal] == spec.model.name
        assert spec.model.name in BACKTEST_SIGNALS
        assert spec.cadence in {"reports", "probes", "chat", "appstore"}
        assert SIGNAL_TEXT[signal] == spec.text
    # The reasons keep their lenses as documented (docs/detection.md).
    assert {s.reason: s.lens for s in SIGNAL_TABLE.values()} == {
        "failure_ratio_spike": "probes",
        "ttft_spike": "chat",
        "latency_spike": "chat",
        "report_spike": "reports",
        "rank_surge": "appstore",
    }
    assert detector_kind("traffic/rps") == "generic"
    assert detector_kind("unknown") is None
