"""``outagewatch reports import`` and ``export``: history in, history out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from outagewatch.cli import _parser, main
from outagewatch.reports_cli import run


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(
        f"services:\n  claude: {{}}\n  gemini: {{}}\nstorage:\n  path: {tmp_path}/o.db\n"
    )
    return path


def export(config: Path, *extra: str) -> str:
    out = io.StringIO()
    args = _parser().parse_args(["reports", "export", "--config.file", str(config), *extra])
    assert run(args, out) == 0
    return out.getvalue()


def test_import_then_export_round_trips(config: Path, tmp_path: Path) -> None:
    csv_file = tmp_path / "history.csv"
    csv_file.write_text(
        "timestamp,service,problem\n"
        "2026-11-01T10:00:00Z,claude,app\n"
        "1761991200,gemini,login\n"  # 2025-11-01T10:00:00Z as epoch seconds
        "2026-11-02 08:30:00,claude,slow,de\n"  # naive: UTC
    )
    assert main(["reports", "import", "--config.file", str(config), str(csv_file)]) == 0
    exported = export(config)
    assert exported == (
        "timestamp,service,problem,country\n"
        "2025-11-01T10:00:00.000Z,gemini,login,\n"
        "2026-11-01T10:00:00.000Z,claude,app,\n"
        "2026-11-02T08:30:00.000Z,claude,slow,DE\n"
    )
    assert export(config, "--since", "2026-11-02T00:00:00Z").count("\n") == 2
    # An export imports again.
    again = tmp_path / "again.csv"
    again.write_text(exported)
    assert main(["reports", "import", "--config.file", str(config), str(again)]) == 0
    assert export(config).count("\n") == 7


def test_one_bad_row_imports_nothing_and_names_the_line(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_file = tmp_path / "history.csv"
    csv_file.write_text(
        "2026-11-01T10:00:00Z,claude,app\n"
        "yesterday,claude,app\n"
        "2026-11-01T10:00:00Z,nosuchbot,app\n"
        "2026-11-01T10:00:00Z,claude,nosuchproblem\n"
        "2026-11-01T10:00:00Z,claude\n"
    )
    assert main(["reports", "import", "--config.file", str(config), str(csv_file)]) == 1
    err = capsys.readouterr().err
    assert f"{csv_file}:2: timestamp is neither ISO 8601 nor epoch seconds" in err
    assert "(timestamp 'yesterday')" in err
    assert f"{csv_file}:3: unknown service (service 'nosuchbot')" in err
    assert f"{csv_file}:4: unknown problem; one of: " in err
    assert "(problem 'nosuchproblem')" in err
    assert f"{csv_file}:5: want timestamp,service,problem[,country]" in err
    assert "nothing imported" in err
    assert not (tmp_path / "o.db").exists()


def test_export_without_a_store_fails_clearly(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reports", "export", "--config.file", str(config)]) == 1
    assert "no store at" in capsys.readouterr().err
