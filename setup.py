"""Records the git commit a wheel or sdist is built from, for ``outagewatch_build_info``,
and compiles the spike detector's per-point modules with mypyc.

Everything else about the package is declared in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "daemon" / "outagewatch"

# The same lookup the daemon makes at run time, loaded from its file: importing the
# package being built would be fragile.
_spec = importlib.util.spec_from_file_location("_outagewatch_revision", PACKAGE / "revision.py")
assert _spec is not None and _spec.loader is not None
revision = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(revision)


def record_revision(package_dir: Path) -> None:
    """Write HEAD into the built package; built from an sdist, keep the sdist's record."""
    head = revision.checkout_revision(ROOT)
    if head is not None:
        package_dir.mkdir(parents=True, exist_ok=True)
        (package_dir / revision.REVISION_FILE).write_text(head + "\n", encoding="ascii")


class BuildPyWithRevision(build_py):
    def run(self) -> None:
        super().run()
        # An editable install runs from the checkout and reads its HEAD live instead.
        if not self.editable_mode:
            record_revision(Path(self.build_lib) / "outagewatch")


class SdistWithRevision(sdist):
    def make_release_tree(self, base_dir: str, files: Any) -> None:
        super().make_release_tree(base_dir, files)
        record_revision(Path(base_dir) / "daemon" / "outagewatch")


# The detector's per-point path, compiled to C by mypyc (docs/detection.md, "Cost"):
# the same source, the same decisions (bench/verdict_hash.py), a third to a sixth of
# the CPU. OUTAGEWATCH_PURE_PYTHON=1 builds without a C compiler. The mypy that
# compiles is pyproject's build requirement, the one constraints.txt pins.
COMPILED = ("spike", "alarms", "models", "novelty", "counts", "shift")


def compiled_extensions() -> list[Any]:
    if os.environ.get("OUTAGEWATCH_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    return mypycify(
        [f"daemon/outagewatch/detect/{name}.py" for name in COMPILED],
        group_name="outagewatch_detect",
    )


setup(
    cmdclass={"build_py": BuildPyWithRevision, "sdist": SdistWithRevision},
    ext_modules=compiled_extensions(),
)
