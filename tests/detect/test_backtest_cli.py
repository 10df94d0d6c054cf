"""`outagewatch backtest`: the daemon's detector over a CSV, from the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from outagewatch.cli import main
from outagewatch.detect.backtest import run_backtest
from outagewatch.detect.settings import DetectionSettings
from outagewatch.detect.synthetic import simulate


def write_series(path: Path, rows: list[tuple[float, float]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value"])
        writer.writerows(rows)


def test_backtest_writes_score_and_alert_per_row_like_the_daemon(tmp_path: Path) -> None:
    stream = simulate(3, 20.0, seed=7, outages_from_s=7 * 86400.0)
    source = tmp_path / "reports.csv"
    write_series(source, stream.rows)
    out = tmp_path / "scored.csv"
    assert main(["backtest", "--signal", "reports", str(source), "-o", str(out)]) == 0
    with out.open() as result:
        rows = list(csv.DictReader(result))
    assert len(rows) == len(stream.rows)
    expected = list(run_backtest("reports", stream.rows, DetectionSettings()))
    assert [int(r["alert"]) for r in rows] == [alert for *_, alert in expected]
    assert sum(int(r["alert"]) for r in rows) >= 1  # the injected outages are caught
    assert all(0.0 <= float(r["score"]) < 1.0 for r in rows)


def test_backtest_prints_to_stdout_without_an_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "latency.csv"
    source.write_text("timestamp,value\n2024-01-01 00:00:00,0.5\n2024-01-01 00:01:00,0.6\n")
    assert main(["backtest", "--signal", "latency", str(source)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "timestamp,value,score,alert"
    assert lines[1].startswith("2024-01-01 00:00:00,0.5,")


def test_bad_input_is_exit_1_with_the_line_and_no_output_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("timestamp,value\n1700000000,1\n1700000300,lots\n")
    out = tmp_path / "out.csv"
    assert main(["backtest", "--signal", "generic", str(source), "-o", str(out)]) == 1
    assert "line 3" in capsys.readouterr().err
    assert not out.exists()


def test_unknown_signal_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["backtest", "--signal", "ttft", "x.csv"])
    assert exit_info.value.code == 2
    assert "failure_ratio" in capsys.readouterr().err


def test_every_backtest_signal_is_accepted(tmp_path: Path) -> None:
    source = tmp_path / "ranks.csv"
    write_series(source, [(1_700_000_000.0 + 900 * i, 40.0 - i) for i in range(10)])
    for signal in ("reports", "latency", "failure_ratio", "rank", "generic"):
        out = tmp_path / f"{signal}.csv"
        assert main(["backtest", "--signal", signal, str(source), "-o", str(out)]) == 0
        assert out.read_text().count("\n") == 11
