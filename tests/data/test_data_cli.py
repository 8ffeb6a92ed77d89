"""`botwarden data import | synth | info` through the real command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from botwarden.cli import app
from botwarden.data.bar_store import BarStore

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["data", *args])
    return result.exit_code, result.output


def test_synth_then_info(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    code, out = _run("synth", "--symbol", "mes", "--days", "3", "--seed", "4",
                     "--end", "2024-03-06", "--data-dir", data)
    assert code == 0, out
    assert "4140 inserted" in out  # sessions of 4, 5 and 6 March, 1380 minutes each
    code, out = _run("synth", "--symbol", "MES", "--days", "3", "--seed", "4",
                     "--end", "2024-03-06", "--data-dir", data)
    assert "0 inserted, 0 updated, 4140 unchanged" in out
    code, out = _run("info", "--data-dir", data)
    assert code == 0, out
    assert "SYNTH/MES" in out and "synthetic*" in out and "4,140" in out


def test_import_reports_rejections_and_keeps_good_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    csv = tmp_path / "bars.csv"
    csv.write_text("time,open,high,low,close,volume\n"
                   "2024-03-05 14:30,5000,5001,4999,5000.5,3\n"
                   "2024-03-05 14:31,5000,4000,4999,5000.5,3\n")
    code, out = _run("import", str(csv), "--symbol", "MES", "--data-dir", str(data))
    assert code == 0, out
    assert "1 of 2 rows accepted, 1 rejected" in out
    assert "line 3 (high below open/close)" in out
    assert len(BarStore(data).load("MES")) == 1


def test_import_refusal_prints_the_fix_and_fails(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("when,price\n1,2\n")
    code, out = _run("import", str(csv), "--symbol", "MES", "--data-dir", str(tmp_path))
    assert code == 1
    assert "CSV_MISSING_COLUMNS" in out and "fix:" in out
