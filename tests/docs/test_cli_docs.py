"""Every command and flag has help text, and the README lists every command."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from outagewatch.cli import _parser

ROOT = Path(__file__).resolve().parents[2]


def parsers(
    parser: argparse.ArgumentParser, name: str = "outagewatch"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from parsers(sub, f"{name} {sub_name}")


def commands() -> list[str]:
    """Every leaf command line: `outagewatch reports import`, …"""
    leaves = []
    for name, parser in parsers(_parser()):
        if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            leaves.append(name)
    return leaves


def test_every_flag_and_argument_has_help_text() -> None:
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in parsers(_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert not missing, missing


def test_readme_command_list_names_every_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    listed = {" ".join(line.split()[:3]) for line in block.group(1).splitlines()}
    for command in commands():
        assert any(line.startswith(command) for line in listed), command
    assert "outagewatch --version" in block.group(1)


def test_readme_says_where_the_command_is_after_make_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/outagewatch" in readme
    assert "pipx install" in readme
