"""Chat probe config: defaults, every rule with its message, the shipped probes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from outagewatch.config import (
    AnthropicProbe,
    ConfigError,
    OpenAIProbe,
    load_config,
    parse_config,
)
from outagewatch.lenses.registry import build_sources

REPO = Path(__file__).resolve().parents[2]


def errors_of(probe: dict[str, Any], **service: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config({"services": {"claude": {"probes": {"chat": probe}, **service}}})
    return caught.value.errors


def test_defaults() -> None:
    config = parse_config(
        {
            "services": {
                "claude": {
                    "probes": {
                        "chat": {
                            "kind": "anthropic",
                            "model": "m",
                            "api_key_credential": "anthropic-key",
                        }
                    }
                }
            }
        }
    )
    probe = config.services["claude"].probes["chat"]
    assert isinstance(probe, AnthropicProbe)
    assert probe.base_url == "https://api.anthropic.com/v1"
    assert (probe.interval, probe.timeout, probe.max_chunk_gap) == (300.0, 60.0, 30.0)
    assert (probe.max_tokens, probe.auth, probe.anthropic_version) == (16, "key", "2023-06-01")
    assert (probe.budget.requests_per_day, probe.budget.tokens_per_day) == (500, 50_000)
    assert probe.budget.cost_per_day is None
    openai = OpenAIProbe.model_validate({"model": "m", "auth": "none"})
    assert openai.base_url == "https://api.openai.com/v1"
    assert (openai.max_tokens_field, openai.include_usage) == ("max_tokens", True)


def test_a_cap_set_to_null_is_removed() -> None:
    probe = OpenAIProbe.model_validate(
        {"model": "m", "auth": "none", "budget": {"tokens_per_day": None}}
    )
    assert (probe.budget.requests_per_day, probe.budget.tokens_per_day) == (500, None)


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (
            {"kind": "anthropic", "api_key_file": "/k"},
            "services -> claude -> probes -> chat -> model: required key is missing",
        ),
        (
            {"kind": "anthropic", "model": "m"},
            "services -> claude -> probes -> chat: "
            "auth: key needs exactly one of api_key_file or api_key_credential",
        ),
        (
            {"kind": "openai", "model": "m", "api_key_file": "/k", "api_key_credential": "k"},
            "services -> claude -> probes -> chat: "
            "auth: key needs exactly one of api_key_file or api_key_credential",
        ),
        (
            {"kind": "openai", "model": "m", "auth": "none", "api_key_file": "/k"},
            "services -> claude -> probes -> chat: auth: none sends no key; remove api_key_file",
        ),
        (
            {"kind": "openai", "model": "m", "api_key": "sk-in-the-config"},
            "services -> claude -> probes -> chat -> api_key: unknown key",
        ),
        (
            {"kind": "openai", "model": "m", "api_key_credential": "../secrets/key"},
            "services -> claude -> probes -> chat -> api_key_credential: '../secrets/key' is "
            "not a systemd credential name (the name given to LoadCredential=; letters, "
            "digits, _ . : -), nor a path",
        ),
        (
            {"kind": "openai", "model": "m", "auth": "none", "budget": {"cost_per_day": 1}},
            "services -> claude -> probes -> chat: budget -> cost_per_day needs a price",
        ),
        (
            {"kind": "openai", "model": "m", "auth": "none", "max_chunk_gap": "1m"},
            "services -> claude -> probes -> chat: "
            "max_chunk_gap (60s) must be shorter than timeout (60s)",
        ),
        (
            {"kind": "anthropic", "model": "m", "auth": "none", "timeout": "10m"},
            "services -> claude -> probes -> chat: timeout (600s) must not exceed interval (300s)",
        ),
        (
            {"kind": "openai", "model": "m", "auth": "none", "base_url": "api.openai.com/v1"},
            "services -> claude -> probes -> chat -> base_url: "
            "must be an http:// or https:// URL, got 'api.openai.com/v1'",
        ),
    ],
)
def test_invalid_chat_probe_is_named_with_its_key_path(probe: dict[str, Any], message: str) -> None:
    assert errors_of(probe) == [message]


def test_service_cost_cap_needs_every_chat_probe_priced() -> None:
    probe = {"kind": "openai", "model": "m", "auth": "none"}
    assert errors_of(probe, chat_budget={"cost_per_day": 5}) == [
        "services -> claude: chat_budget -> cost_per_day needs a price on probe chat"
    ]


def test_shipped_config_has_disabled_chat_probes_ready_for_a_key() -> None:
    config = load_config(REPO / "deploy" / "config" / "outagewatch.yml")
    chat = {
        (service, name): probe
        for service, cfg in config.services.items()
        for name, probe in cfg.probes.items()
        if isinstance(probe, AnthropicProbe | OpenAIProbe)
    }
    assert {"claude", "chatgpt", "gemini"} <= {service for service, _ in chat}
    assert len({service for service, _ in chat}) >= 5
    for probe in chat.values():
        assert not probe.enabled and probe.auth == "key"
        assert probe.api_key_credential is not None  # a file that need not exist yet
    gemini = chat[("gemini", "chat")]
    assert isinstance(gemini, OpenAIProbe)
    assert gemini.base_url == "https://generativelanguage.googleapis.com/v1beta/openai/"
    # Disabled probes are validated but never built into sources.
    assert not any(source.kind in ("anthropic", "openai") for source in build_sources(config))
