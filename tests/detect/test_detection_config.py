"""The `detection:` and `disruption:` config sections: defaults, overrides, key-path errors."""

from __future__ import annotations

import pytest

from outagewatch.config import ConfigError, parse_config
from outagewatch.detect.settings import DetectionSettings


def test_defaults_are_one_parameter_set_and_the_documented_rules() -> None:
    config = parse_config({})
    assert config.detection == DetectionSettings()
    rules = config.disruption
    assert (rules.probe_failure_runs, rules.probe_failure_share) == (3, 0.5)
    assert (rules.chat_overloaded_runs, rules.official_disrupted_level) == (2, 2)
    assert (rules.corroborating_lenses, rules.stale_intervals) == (2, 3.0)
    assert (rules.recover_after, rules.lead_window, rules.history) == (120.0, 21600.0, 100)
    assert config.storage.state_save_interval == 30.0


def test_overrides_take_durations_and_detector_fields() -> None:
    config = parse_config(
        {
            "detection": {"cooldown_s": 3600, "z_alarm": 5},
            "disruption": {"recover_after": "5m", "lead_window": "1h"},
            "storage": {"state_save_interval": "10s"},
        }
    )
    assert config.detection.cooldown_s == 3600 and config.detection.z_alarm == 5
    assert config.disruption.recover_after == 300 and config.disruption.lead_window == 3600
    assert config.storage.state_save_interval == 10


def test_errors_name_their_key_paths() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "detection": {"z_alarm": 0, "cooldwon_s": 1},
                "disruption": {"probe_failure_share": 2, "recover_after": "soon"},
            }
        )
    errors = info.value.errors
    assert "detection -> z_alarm: Input should be greater than 0" in errors
    assert "detection -> cooldwon_s: unknown key" in errors
    assert "disruption -> probe_failure_share: Input should be less than or equal to 1" in errors
    assert any(e.startswith("disruption -> recover_after: invalid duration") for e in errors)
