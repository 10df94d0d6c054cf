"""The package as users install it: a wheel (and an sdist) built from a git checkout,
installed into a fresh venv, run from its own ``outagewatch`` script.

No network: the build uses this venv's setuptools (no build isolation) and the fresh
venv borrows this venv's installed dependencies through a ``.pth`` line, so only the
wheel's own files come from the build.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from outagewatch import __version__

from ..conftest import Serve
from ..daemon_process import DaemonProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What the build reads, copied over the clone so uncommitted changes are built too.
BUILD_INPUTS = ["pyproject.toml", "setup.py", "README.md", "LICENSE", "daemon"]


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def checkout_of_head(where: Path) -> tuple[Path, str]:
    """A git checkout of this one's HEAD with the working tree's build inputs on top."""
    head = run("git", "rev-parse", "HEAD", cwd=ROOT).strip()
    src = where / "outagewatch"
    run("git", "clone", "--quiet", "--shared", "--no-checkout", ROOT, src)
    run("git", "checkout", "--quiet", "--detach", head, cwd=src)
    for name in BUILD_INPUTS:
        if (src / name).is_dir():
            shutil.rmtree(src / name)
        if (ROOT / name).is_dir():
            # Not the modules compiled in place for this checkout's venvs: the build makes its own.
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "REVISION", "*.so")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    return src, head


def build_wheel(src: Path, dist: Path, env: dict[str, str] | None = None) -> Path:
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--wheel-dir",
        dist,
        src,
        env=env,
    )
    [wheel] = dist.glob("outagewatch-*.whl")
    return wheel


@dataclass
class Installed:
    venv: Path
    wheel: Path
    head: str

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "outagewatch"


def install(wheel: Path, venv: Path) -> None:
    """A fresh venv with only the wheel installed; dependencies borrowed from this venv."""
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    # Plain directory lines: the .pth files in there (the editable install) are not run.
    (Path(site) / "outagewatch-test-deps.pth").write_text("\n".join(sorted(ours)) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    where = tmp_path_factory.mktemp("wheel")
    src, head = checkout_of_head(where)
    wheel = build_wheel(src, where / "dist")
    install(wheel, where / "venv")
    return Installed(where / "venv", wheel, head)


def test_wheel_holds_the_package_its_licence_and_the_revision(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        dist_info = f"outagewatch-{__version__}.dist-info"
        metadata = email.message_from_bytes(wheel.read(f"{dist_info}/METADATA"))
        revision = wheel.read("outagewatch/REVISION").decode().strip()

    assert revision == installed.head
    assert {"outagewatch/py.typed", "outagewatch/cli.py", "outagewatch/sources/tls.py"} <= names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not any(name.startswith("tests/") for name in names)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier") or []
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    # The detector's per-point modules, compiled (setup.py), with mypyc's runtime.
    for module in ("spike", "novelty", "alarms"):
        assert any(
            n.startswith(f"outagewatch/detect/{module}.cpython-") and n.endswith(".so")
            for n in names
        ), module
    assert any(n.startswith("outagewatch_detect__mypyc.") for n in names)
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("aiohttp") and "<3.15" in r for r in requires)


def test_installed_script_runs_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    where = run(
        installed.venv / "bin" / "python",
        "-c",
        "import outagewatch.detect as d; print(d.__file__); print(d.spike.__file__)",
    )
    package, spike = where.split()
    assert Path(package).is_relative_to(installed.venv)
    assert Path(spike).is_relative_to(installed.venv) and spike.endswith(".so")

    version = run(installed.script, "--version", cwd=tmp_path)
    assert version.strip() == f"outagewatch {__version__} (revision {installed.head})"

    config = ROOT / "deploy" / "config" / "outagewatch.yml"
    checked = run(installed.script, "check-config", "--config.file", config, cwd=tmp_path)
    assert checked.startswith(f"{config}: OK")


async def test_daemon_from_the_wheel_exports_its_revision(
    installed: Installed, serve: Serve, tmp_path: Path
) -> None:
    async def ok(_r: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/ok", ok)
    base = await serve(app)
    config = tmp_path / "outagewatch.yml"
    config.write_text(
        "services:\n  claude:\n    probes:\n      api:\n"
        f"        kind: http\n        url: {base}/ok\n"
    )
    daemon = DaemonProcess(config, tmp_path / "daemon.log", program=[str(installed.script)])
    await daemon.start()
    try:
        text = await daemon.wait_for_metric("outagewatch_build_info{")
    finally:
        await daemon.stop()

    [info] = [line for line in text.splitlines() if line.startswith("outagewatch_build_info{")]
    assert f'revision="{installed.head}"' in info
    assert f'version="{__version__}"' in info


def test_wheel_built_from_the_sdist_keeps_the_revision(tmp_path: Path) -> None:
    src, head = checkout_of_head(tmp_path)
    run(
        sys.executable,
        "-c",
        "from setuptools import build_meta; print(build_meta.build_sdist('dist'))",
        cwd=src,
    )
    [sdist] = (src / "dist").glob("outagewatch-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    [unpacked] = (tmp_path / "unpacked").iterdir()
    assert (unpacked / "LICENSE").is_file()

    # No git in the unpacked sdist: the revision comes from the sdist's record. Built
    # the way a machine without a C compiler would: every module stays Python.
    pure = {**os.environ, "OUTAGEWATCH_PURE_PYTHON": "1"}
    wheel = build_wheel(unpacked, tmp_path / "dist", env=pure)
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("outagewatch/REVISION").decode().strip() == head
        names = archive.namelist()
    assert "outagewatch/detect/spike.py" in names
    assert not any(name.endswith(".so") for name in names)
    assert wheel.name.endswith("-py3-none-any.whl")


def test_editable_install_reports_the_checkouts_head() -> None:
    import outagewatch

    checkout = Path(outagewatch.__file__).resolve().parents[2]
    assert (checkout / "daemon" / "outagewatch").is_dir(), "the tests run on an editable install"
    head = run("git", "rev-parse", "HEAD", cwd=checkout).strip()
    script = Path(sys.executable).parent / "outagewatch"
    version = run(script, "--version")
    assert version.strip() == f"outagewatch {__version__} (revision {head})"
