"""The generated dashboards as data: their panels and PromQL, for tests."""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

DASHBOARDS = Path(__file__).parents[2] / "dashboards"


def generator() -> ModuleType:
    """dashboards/generate.py, imported from its path (dashboards/ is not a package)."""
    spec = importlib.util.spec_from_file_location("generate", DASHBOARDS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, dict[str, Any]]:
    """The committed dashboard JSON, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows left out)."""
    return (panel for panel in board["panels"] if panel["type"] != "row")


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    for panel in panels(board):
        for target in panel["targets"]:
            yield panel["title"], target["expr"]


def concrete(expr: str, rate_interval: str, service: str = ".*") -> str:
    """A panel query with Grafana's variables filled in, ready for Prometheus."""
    expr = expr.replace("$__rate_interval", rate_interval)
    return re.sub(r'service=~?"\$service"', f'service=~"{service}"', expr)
