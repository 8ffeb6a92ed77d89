"""`botwarden backtest` from a CSV file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from backtesting.test import GOOG
from typer.testing import CliRunner

from botwarden.cli import app
from botwarden.domain.bars import Bars
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.strategies import build_strategy

GOOG_ARGS = ["--strategy", "sma_cross", "-p", "fast=10", "-p", "slow=20", "--point-value", "1",
             "--tick-size", "0.01", "--size", "10", "--commission-per-unit", "0.35",
             "--slippage-ticks", "1", "--cash", "100000"]


@pytest.fixture(scope="module")
def goog_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "goog.csv"
    frame = GOOG.rename(columns=str.lower).rename_axis("time").reset_index()
    frame["time"] = frame["time"].dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)
    return path


def test_json_output_is_only_the_result(goog_csv: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "--data", str(goog_csv), *GOOG_ARGS,
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == {"trades", "metrics"}
    assert set(document["metrics"]) == {"trades", "net_pnl", "final_equity", "win_rate",
                                        "profit_factor", "expectancy", "sharpe",
                                        "max_drawdown_pct"}
    assert set(document["trades"][0]) == {"entry_time", "exit_time", "side", "qty",
                                          "entry_price", "exit_price", "pnl"}

    names = ("Open", "High", "Low", "Close", "Volume")
    bars = Bars("CUSTOM", "1d", GOOG.index.values.astype("datetime64[ns]").astype(np.int64),
                *(GOOG[c].to_numpy(dtype=np.float64) for c in names))
    config = ExecutionConfig(Decimal("0.01"), Decimal(1), Decimal("0.35"), size=10,
                             slippage_ticks=1, cash=Decimal(100_000))
    direct = run_backtest(bars, build_strategy("sma_cross", {"fast": 10, "slow": 20}), config)
    assert document["metrics"]["trades"] == direct.metrics.trades == len(document["trades"])
    assert document["metrics"]["final_equity"] == pytest.approx(direct.metrics.final_equity)
    first = direct.trades()[0]
    assert document["trades"][0]["entry_price"] == float(first.entry_price)
    assert document["trades"][0]["pnl"] == float(first.pnl)
    assert document["trades"][0]["entry_time"] == first.entry_time.isoformat()


def test_table_output(goog_csv: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "--data", str(goog_csv), *GOOG_ARGS])
    assert result.exit_code == 0, result.output
    assert "sharpe" in result.stdout and "profit_factor" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope"], "UNKNOWN_STRATEGY"),
    (["--strategy", "sma_cross", "-p", "fast=40", "-p", "slow=20"], "INVALID_STRATEGY_PARAMS"),
    (["--strategy", "sma_cross", "--tick-size", "0.25", "--point-value", "5"],
     "PRICE_OFF_TICK_GRID"),
    (["--strategy", "sma_cross", "--symbol", "XYZ"], "UNKNOWN_SYMBOL"),
])
def test_refusals_name_the_reason(goog_csv: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "--data", str(goog_csv), *args])
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_file_without_the_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("date,price\n2024-01-02,1.0\n")
    result = CliRunner().invoke(app, ["backtest", "--data", str(path), "--strategy", "sma_cross"])
    assert result.exit_code == 2 and "INVALID_BAR_FILE" in result.stderr
