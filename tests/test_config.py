"""Config loading: defaults, durations, and every invalid file with its exact message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import structlog.testing

from outagewatch.config import EX_CONFIG, ConfigError, load_config, parse_config, parse_duration

from .conftest import TESTDATA

REPO = Path(__file__).resolve().parents[1]

# Each invalid file, paired with exactly what the user is told.
INVALID = {
    "invalid-unknown-key.yml": ["services -> claude -> probes -> api -> timout: unknown key"],
    "invalid-url.yml": [
        "services -> claude -> probes -> api -> url: must be an http:// or https:// URL, "
        "got 'api.anthropic.com/v1/models'"
    ],
    "invalid-duration.yml": [
        "services -> chatgpt -> probes -> web -> interval: invalid duration '30 seconds': "
        "use a number and unit, like 30s, 5m, 1h"
    ],
    "invalid-timeout-over-interval.yml": [
        "services -> gemini -> probes -> api: timeout (60s) must not exceed interval (10s)"
    ],
    "invalid-missing-kind.yml": [
        "services -> grok -> probes -> api -> kind: required key is missing"
    ],
    "invalid-unknown-kind.yml": [
        "services -> grok -> probes -> api -> kind: unknown kind 'ftp' "
        "(one of: 'http', 'anthropic', 'openai')"
    ],
    "invalid-service-name.yml": [
        "services -> Claude AI: invalid name 'Claude AI': "
        "use lowercase letters, digits, '-' and '_'"
    ],
    "invalid-regex.yml": [
        "services -> perplexity -> probes -> web -> fail_if_body_matches: invalid regex "
        "'(unclosed': missing ), unterminated subpattern at position 0"
    ],
    "invalid-status-code.yml": [
        "services -> deepseek -> probes -> api -> valid_status_codes -> 2: "
        "Input should be less than or equal to 599"
    ],
    "invalid-duplicate-key.yml": ["invalid YAML at line 7, column 9: duplicate key 'url'"],
    "invalid-not-a-mapping.yml": ["the top level must be a mapping"],
    "invalid-several-errors.yml": [
        "scheduler -> max_concurrency: Input should be greater than or equal to 1",
        "services -> claude -> probes -> api -> url: must be an http:// or https:// URL, "
        "got 'ftp://api.anthropic.com/'",
        "services -> claude -> probes -> web -> method: "
        "Input should be 'GET', 'HEAD', 'POST', 'PUT' or 'OPTIONS'",
        "services -> chatgpt -> probes -> api -> json_path_equals -> 1 -> equals: "
        "required key is missing",
        "services -> chatgpt -> probes -> api -> json_path_equals -> 1 -> equal: unknown key",
    ],
}


def test_every_invalid_file_is_paired_with_its_message() -> None:
    assert {p.name for p in TESTDATA.glob("invalid-*.yml")} == set(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_config_names_every_error_with_its_key_path(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(TESTDATA / name)
    assert caught.value.errors == INVALID[name]


def test_check_config_prints_the_errors_and_exits_78() -> None:
    path = TESTDATA / "invalid-several-errors.yml"
    done = subprocess.run(
        [sys.executable, "-m", "outagewatch.cli", "check-config", "--config.file", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == EX_CONFIG
    assert done.stderr.splitlines() == [
        f"invalid configuration in {path}:",
        *(f"  {line}" for line in INVALID["invalid-several-errors.yml"]),
    ]


def test_shipped_configs_pass_check_config(tmp_path: Path) -> None:
    # The files the shipped configs name, made here (check-config opens each one).
    secrets = tmp_path / "etc"
    secrets.mkdir()
    (secrets / "anthropic-api-key").write_text("sk-test\n")
    for shipped in sorted((REPO / "deploy" / "config").glob("*.yml")):
        path = tmp_path / shipped.name
        path.write_text(shipped.read_text().replace("/etc/outagewatch/", f"{secrets}/"))
        done = subprocess.run(
            [sys.executable, "-m", "outagewatch.cli", "check-config", "--config.file", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "OK" in done.stdout


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yml")
    assert caught.value.errors[0].startswith("cannot read file:")


def test_defaults_fill_what_the_file_leaves_out() -> None:
    config = parse_config(
        {"services": {"claude": {"probes": {"api": {"kind": "http", "url": "https://a.test/"}}}}}
    )
    probe = config.services["claude"].probes["api"]
    assert (probe.interval, probe.timeout, probe.method) == (30.0, 10.0, "GET")
    assert probe.max_body_bytes == 1 << 20
    assert config.scheduler.max_concurrency == 256


def test_top_level_x_keys_hold_anchors_and_are_ignored() -> None:
    config = parse_config({"x-edge": {"anything": 1}, "services": {}})
    assert config.services == {}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1d", 86400.0), (15, 15.0)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "-1s", "0s", "1y", True])
def test_bad_durations(text: str | bool) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_config_is_frozen() -> None:
    config = parse_config({})
    with pytest.raises(ValueError):
        config.services = {}  # type: ignore[misc]


def test_appstore_backoff_max_is_a_deprecated_name_of_max_backoff(tmp_path: Path) -> None:
    path = tmp_path / "old.yml"
    path.write_text("appstore:\n  backoff_max: 2h\n")
    with structlog.testing.capture_logs() as logs:
        config = load_config(path)
    assert config.appstore.max_backoff == 7200
    warnings = [e for e in logs if e["event"] == "config_key_deprecated"]
    assert [(w["key"], w["use"]) for w in warnings] == [
        ("appstore -> backoff_max", "appstore -> max_backoff")
    ]
    with structlog.testing.capture_logs() as logs:
        assert load_config(_written(tmp_path, "appstore:\n  max_backoff: 2h\n")).appstore
    assert not [e for e in logs if e["event"] == "config_key_deprecated"]
    with pytest.raises(ConfigError) as caught:
        load_config(_written(tmp_path, "appstore:\n  max_backoff: 2h\n  backoff_max: 1h\n"))
    assert "appstore" in str(caught.value) and "not both" in str(caught.value)


def _written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(text)
    return path
