"""deploy/README.md walked as written, into a scratch root.

The guide's own shell blocks run in order, with `sudo` dropped and every absolute
/etc, /opt and /var path moved under a temp directory; the few commands that need a
live systemd or the network are listed here and skipped, so a new command in the
guide must either run or be added to that list. Then what the guide installed is
checked with the tools the guide names: check-config, systemd-analyze verify,
promtool, amtool, and the daemon started with the credentials the guide created.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.daemon_process import DaemonProcess
from tests.docs.test_examples import yaml_blocks

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "deploy" / "README.md"
OUTAGEWATCH = Path(sys.executable).parent / "outagewatch"
# Commands a scratch root cannot run: a live systemd, the network, or step 1's
# install into /opt (the test venv's outagewatch stands in for it).
SKIPPED = (
    "python3 -m venv ",
    "/opt/outagewatch/bin/pip install ",
    "systemctl ",
    "curl ",
    "prometheus-alertmanager ",
)
# What a Debian host already has before the guide starts.
PREEXISTING = (
    "etc/systemd/system",
    "etc/prometheus",
    "etc/grafana/provisioning/datasources",
    "etc/grafana/provisioning/dashboards",
    "var/lib/grafana",
)


def shell_commands(page: Path) -> list[str]:
    """Every command of the page's ```sh blocks, continuation lines joined."""
    commands = []
    for match in re.finditer(r"^ *```sh\n(.*?)^ *```", page.read_text(), re.M | re.S):
        text = re.sub(r"\\\n\s*", "", match.group(1))
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def in_root(command: str, root: Path) -> str:
    """The command without sudo, its system paths under ``root``."""
    command = re.sub(r"(^|\|\s*)sudo ", r"\1", command)
    return re.sub(r"(?<![\w./-])/(etc|opt|var)/", rf"{root}/\1/", command)


def walk(root: Path) -> list[str]:
    """Run the guide's commands in the scratch root; return the ones skipped."""
    for directory in PREEXISTING:
        (root / directory).mkdir(parents=True, exist_ok=True)
    # Step 1 stand-in: the installed command is the test venv's.
    installed = root / "opt/outagewatch/bin/outagewatch"
    installed.parent.mkdir(parents=True)
    installed.write_text(f'#!/bin/sh\nexec "{OUTAGEWATCH}" "$@"\n')
    installed.chmod(0o755)
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": "sk-ant-test-key",
        "REPORT_TOKEN": "report-token-1",
        "PAGERDUTY_ROUTING_KEY": "pd-key",
        "TICKET_TOKEN": "ticket-token",
    }
    skipped = []
    for command in shell_commands(GUIDE):
        bare = re.sub(r"^sudo ", "", command)
        if bare.startswith(SKIPPED) or " | sudo systemctl" in command:
            skipped.append(command)
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", in_root(command, root)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
    return skipped


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The guide walked once: the scratch root and the commands skipped."""
    require_tool("promtool")
    require_tool("amtool")
    root = tmp_path_factory.mktemp("guide") / "root"
    return root, walk(root)


def test_the_guide_names_only_these_commands_it_cannot_run_here(
    walked: tuple[Path, list[str]],
) -> None:
    _, skipped = walked
    assert {re.sub(r"^sudo ", "", c).split()[0] for c in skipped} == {
        "python3",
        "/opt/outagewatch/bin/pip",
        "systemctl",
        "curl",
        "prometheus-alertmanager",
    }


def test_what_the_guide_installs_works(walked: tuple[Path, list[str]]) -> None:
    root, _ = walked
    etc = root / "etc"
    # Step 2: the config, checked by the installed command.
    assert (etc / "outagewatch/outagewatch.yml").read_bytes() == (
        ROOT / "deploy/config/outagewatch.yml"
    ).read_bytes()
    # Step 3: the credentials, root-only, holding what was given.
    credstore = etc / "credstore"
    assert credstore.stat().st_mode & 0o777 == 0o700
    assert (credstore / "anthropic-api-key").read_text().strip() == "sk-ant-test-key"
    for name in ("anthropic-api-key", "report-tokens", "report-hash-secret"):
        assert (credstore / name).stat().st_mode & 0o777 == 0o600, name
    # Every credential file the guide creates is one the unit loads.
    unit = (etc / "systemd/system/outagewatch.service").read_text()
    loaded = set(re.findall(r"^LoadCredential=([^:\s]+)", unit, re.M))
    assert {p.name for p in credstore.iterdir()} <= loaded
    # Step 5: the unit verifies in that root.
    if shutil.which("systemd-analyze"):
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
        for stand_in in ("bin/kill",):
            (root / stand_in).parent.mkdir(parents=True, exist_ok=True)
            (root / stand_in).write_text("#!/bin/sh\n")
            (root / stand_in).chmod(0o755)
        verify = subprocess.run(
            ["systemd-analyze", "verify", f"--root={root}", "outagewatch.service"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    # Prometheus and Alertmanager, as installed.
    for args in (
        ["promtool", "check", "config", str(etc / "prometheus/prometheus.yml")],
        ["amtool", "check-config", str(etc / "prometheus/alertmanager.yml")],
    ):
        result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    # Grafana: the provider reads the directory the JSON went to, the datasource is
    # the single-host Prometheus.
    provider = yaml.safe_load((etc / "grafana/provisioning/dashboards/outagewatch.yml").read_text())
    path = Path(in_root(provider["providers"][0]["options"]["path"] + "/", root))
    assert sorted(p.name for p in path.iterdir()) == [
        "health.json",
        "overview.json",
        "service.json",
    ]
    source = yaml.safe_load((etc / "grafana/provisioning/datasources/outagewatch.yml").read_text())
    assert source["datasources"][0]["url"] == "http://localhost:9090"


async def test_the_daemon_starts_with_the_guides_credentials(
    walked: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """The guide's config snippet and credentials, as systemd would hand them over:
    `run` must not exit 78 where `check-config` passed (issue 15)."""
    root, _ = walked
    snippets = [body for _, body in yaml_blocks(GUIDE)]
    config = yaml.safe_load(snippets[0])
    del config["services"]["claude"]["probes"]  # no network: the chat probe would call out
    config["services"]["claude"]["reports"] = {"public": True}
    path = tmp_path / "outagewatch.yml"
    path.write_text(yaml.safe_dump(config))
    check = await asyncio.to_thread(
        subprocess.run,
        [str(root / "opt/outagewatch/bin/outagewatch"), "check-config", "--config.file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # As ExecStartPre gets them: the unit's credentials, in $CREDENTIALS_DIRECTORY.
        env={**os.environ, "CREDENTIALS_DIRECTORY": str(root / "etc/credstore")},
    )
    assert check.returncode == 0, check.stderr
    daemon = DaemonProcess(
        path,
        tmp_path / "daemon.log",
        env={
            "CREDENTIALS_DIRECTORY": str(root / "etc/credstore"),
            "STATE_DIRECTORY": str(tmp_path / "state"),
        },
    )
    (tmp_path / "state").mkdir()
    await daemon.start()
    try:
        status, _ = await daemon.get("/-/ready")
        assert status == 200
    finally:
        await daemon.stop()
    # Without the credentials the same config fails as the guide warns: exit 78.
    missing = DaemonProcess(
        path, tmp_path / "missing.log", env={"CREDENTIALS_DIRECTORY": str(tmp_path / "none")}
    )
    await missing.start(wait_ready=False)
    assert missing.proc is not None
    assert await asyncio.wait_for(missing.proc.wait(), 30) == 78
