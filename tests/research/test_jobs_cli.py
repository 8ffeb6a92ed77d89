"""`botwarden sweep`, `matrix` and `evolve` on bar-store data: JSON alone on stdout, the
same figures as the research functions, readable errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from botwarden.cli import app
from botwarden.config import get_settings
from tests.research.jobs_support import write_synthetic_days


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    write_synthetic_days(tmp_path, days=6)
    monkeypatch.setenv("BOTWARDEN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BOTWARDEN_DASK_SCHEDULER", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def invoke(*args: str) -> dict:
    result = CliRunner().invoke(app, [*args, "--workers", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_sweep_grid_json(data_dir: Path) -> None:
    out = invoke("sweep", "--strategy", "sma_cross", "--grid", "fast=3,5",
                 "--grid", "slow=10,20", "--timeframe", "5m")
    assert out["mode"] == "grid" and out["combinations"] == 4
    assert [r["rank"] for r in out["results"]] == [1, 2, 3, 4]


def test_sweep_windows_json(data_dir: Path) -> None:
    out = invoke("sweep", "--strategy", "ema_cross", "--windows", "3", "--window-days", "2")
    assert out["mode"] == "windows" and out["windows"] == 3


def test_matrix_json(data_dir: Path) -> None:
    out = invoke("matrix", "--strategy", "donchian_breakout", "-p", "period=10")
    assert len(out["cells"]) == 6
    assert out["consistency"] == sum(c["profitable"] for c in out["cells"]) / 6


def test_evolve_json(data_dir: Path) -> None:
    out = invoke("evolve", "--strategy", "sma_cross", "--generations", "2", "--population", "3",
                 "--space", "fast=2:10", "--space", "slow=12:40")
    assert [g["generation"] for g in out["generations"]] == [0, 1]
    assert out["settings"]["space"] == {"fast": [2, 10], "slow": [12, 40]}


def test_table_output_and_errors(data_dir: Path) -> None:
    table = CliRunner().invoke(app, ["sweep", "--strategy", "sma_cross", "--grid", "fast=3,5",
                                     "--workers", "1"])
    assert table.exit_code == 0 and "ranked by score" in table.stdout
    unknown = CliRunner().invoke(app, ["matrix", "--strategy", "nope", "--workers", "1"])
    assert unknown.exit_code == 2 and "UNKNOWN_STRATEGY" in unknown.output
    no_data = CliRunner().invoke(app, ["sweep", "--strategy", "sma_cross", "--symbol", "MNQ",
                                       "--workers", "1"])
    assert no_data.exit_code == 2 and "NO_DATA" in no_data.output
