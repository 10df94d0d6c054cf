"""Which commit ``outagewatch_build_info`` names when running from a checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

from outagewatch.revision import checkout_revision


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def test_only_the_projects_own_checkout_gives_its_head(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    nested = repo / "venv" / "lib"  # say, a venv with an installed copy inside a checkout
    nested.mkdir(parents=True)
    for where in (repo, nested):
        (where / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    git("init", "--quiet", cwd=repo)
    git("add", "pyproject.toml", cwd=repo)
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    git(*identity, "commit", "--quiet", "-m", "first", cwd=repo)

    assert checkout_revision(repo) == git("rev-parse", "HEAD", cwd=repo)
    assert checkout_revision(nested) is None
    assert checkout_revision(tmp_path) is None  # not a checkout at all
