"""The git commit this copy of outagewatch was built from (``outagewatch_build_info``)."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

# Written into the wheel (and the sdist) by setup.py; a checkout never has one.
REVISION_FILE = "REVISION"
UNKNOWN = "unknown"


def build_revision() -> str:
    """The commit recorded when the package was built, else HEAD of the checkout it runs from."""
    recorded = resources.files("outagewatch").joinpath(REVISION_FILE)
    if recorded.is_file():
        return recorded.read_text(encoding="ascii").strip() or UNKNOWN
    return checkout_revision(Path(__file__).resolve().parent.parent.parent) or UNKNOWN


def checkout_revision(root: Path) -> str | None:
    """HEAD when ``root`` is the top of a git checkout of this project, else None.

    An editable install runs from ``<checkout>/daemon/outagewatch``; a wheel installed
    inside some other repository (a venv in a checkout) must not report that
    repository's commit, hence the check that ``root`` is the checkout's top.
    """
    if not (root / "pyproject.toml").is_file():
        return None
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--show-toplevel", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not a checkout
    toplevel, head = found.stdout.split()
    return head if Path(toplevel).resolve() == root.resolve() else None
