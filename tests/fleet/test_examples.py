"""The fleet examples in deploy/fleet are valid Prometheus configs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

FLEET = Path(__file__).parents[2] / "deploy" / "fleet"


@pytest.mark.parametrize("name", sorted(p.name for p in FLEET.glob("prometheus-*.yml")))
def test_prometheus_example_passes_promtool(name: str) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(FLEET / name)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_example_is_described_in_the_readme() -> None:
    readme = (FLEET / "README.md").read_text()
    assert all(f"`{p.name}`" in readme for p in FLEET.glob("*.yml"))
