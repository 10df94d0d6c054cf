"""The shipped systemd unit: it parses cleanly and its sandbox exposure stays low."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).parents[2] / "deploy" / "systemd" / "outagewatch.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def _fake_root(tmp_path: Path) -> Path:
    """A root tree where every command the unit runs exists.

    `systemd-analyze verify` checks that ExecStart= binaries are executable and that
    the targets the unit orders against load. The unit names the install path
    /opt/outagewatch/bin/outagewatch, which this machine does not have, so verify
    runs with --root on a tree holding the unit, stand-ins for its commands and a
    copy of the distribution's units (sysinit.target, network-online.target, ...).
    """
    root = tmp_path / "root"
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    shutil.copy(UNIT, unit_dir / UNIT.name)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for command in {
        value.split()[0]
        for key in ("ExecStartPre", "ExecStart", "ExecReload")
        for value in _unit_settings()[key]
    }:
        stand_in = root / command.lstrip("/")
        stand_in.parent.mkdir(parents=True, exist_ok=True)
        stand_in.write_text("#!/bin/sh\n")
        stand_in.chmod(0o755)
    return root


def _verify(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", UNIT.name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_unit_verifies_without_any_warning(tmp_path: Path) -> None:
    result = _verify(_fake_root(tmp_path))
    # verify exits 0 on unknown keys and unparsable values, printing only a warning.
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == ""


def test_verify_catches_a_misspelt_setting(tmp_path: Path) -> None:
    """Guards the test above: a broken unit does produce output it would reject."""
    root = _fake_root(tmp_path)
    unit = root / "etc/systemd/system" / UNIT.name
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomme=yes"))
    assert "Unknown key 'ProtectHomme'" in _verify(root).stderr


def test_security_exposure_is_at_most_two() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout
    assert float(match.group(1)) <= 2.0


def test_unit_follows_the_service_contract() -> None:
    settings = _unit_settings()
    assert settings["Type"] == ["notify"]
    assert settings["RestartPreventExitStatus"] == ["78"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "check-config" in settings["ExecStartPre"][0]
    assert settings["DynamicUser"] == ["yes"]
    assert settings["StateDirectory"] == ["outagewatch"]
    assert settings["CapabilityBoundingSet"] == [""]
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "ProcSubset" not in settings  # it would hide /proc/stat from the process collector
    assert {"anthropic-api-key", "report-tokens"} <= set(settings["LoadCredential"])
    assert "WatchdogSec" in settings
