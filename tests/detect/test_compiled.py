"""The detector's compiled modules (setup.py's COMPILED): what the daemon and these tests run.

An editable install compiles them next to their sources; Python then imports the
compiled file, so an edit to a source that was not rebuilt would go untested.
"""

from __future__ import annotations

import ast
import importlib
import os
import tomllib
from pathlib import Path

from outagewatch.detect import compiled

ROOT = Path(__file__).resolve().parents[2]


def compiled_names() -> tuple[str, ...]:
    """setup.py's COMPILED, read without running setup.py."""
    for node in ast.parse((ROOT / "setup.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED" for target in node.targets
        ):
            names = ast.literal_eval(node.value)
            assert isinstance(names, tuple)
            return names
    raise AssertionError("setup.py names no COMPILED modules")


def test_setup_compiles_the_detectors_per_point_modules() -> None:
    assert set(compiled_names()) == {"spike", "alarms", "models", "novelty", "counts", "shift"}
    for name in compiled_names():
        assert (ROOT / "daemon/outagewatch/detect" / f"{name}.py").is_file()


def test_the_build_compiles_with_the_pinned_mypy() -> None:
    """The compiled code is mypy's: the build uses the version the checks use."""
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [pin] = [r for r in build["build-system"]["requires"] if r.startswith("mypy")]
    pinned = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert pin.startswith("mypy==") and pin in pinned


def test_the_detector_runs_as_installed_from_its_current_sources() -> None:
    if os.environ.get("OUTAGEWATCH_PURE_PYTHON", "") not in ("", "0"):
        # Installed without compiling: nothing compiled may shadow the sources.
        for name in compiled_names():
            module = importlib.import_module(f"outagewatch.detect.{name}")
            assert (module.__file__ or "").endswith(".py"), f"{name}: {module.__file__}"
        return
    assert compiled(), "outagewatch.detect.spike is interpreted: run `make` (pip install -e .)"
    for name in compiled_names():
        module = importlib.import_module(f"outagewatch.detect.{name}")
        built = Path(module.__file__ or "")
        assert built.suffix == ".so", f"{name} is not compiled ({built})"
        source = built.with_name(f"{name}.py")
        if source.is_file():  # an editable install: built beside its source
            assert built.stat().st_mtime >= source.stat().st_mtime, (
                f"{built.name} is older than {source.name}: rebuild with `make` "
                "(pip install -e .) before testing"
            )
