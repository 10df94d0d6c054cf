"""docs/configuration.md is what the generator writes from the config models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from outagewatch.config import Config
from outagewatch.config_reference import REGENERATE, MissingDescription, render, sections

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def test_committed_reference_is_what_the_generator_writes() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is stale: run `{REGENERATE} -o docs/configuration.md` and commit it"
    )


def test_every_key_of_every_model_is_in_the_reference() -> None:
    page = render()
    for section in sections():
        assert f"## {section.title}" in page
        for key in section.model.model_fields:
            assert f"| `{key}` |" in page, (section.path, key)


def test_every_probe_and_status_page_kind_has_its_section() -> None:
    kinds = {section.kind for section in sections() if section.kind}
    assert kinds == {"http", "anthropic", "openai", "statuspage", "incidentio", "google", "dns"}


def test_a_field_without_a_description_stops_the_generator() -> None:
    class Bare(BaseModel):
        documented: int = 1

    with pytest.raises(MissingDescription, match=r"Bare\.documented"):
        render(Bare)


def test_the_module_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "configuration.md"
    subprocess.run(
        [sys.executable, "-m", "outagewatch.config_reference", "-o", str(out)],
        check=True,
        timeout=60,
    )
    assert out.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
    assert Config.model_fields  # the page documents the real model
