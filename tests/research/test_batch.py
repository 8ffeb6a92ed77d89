"""Many parameter sets at once give the metrics of one backtest each."""

from __future__ import annotations

from decimal import Decimal

from botwarden.research.batch import run_many
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.strategies import build_strategy
from tests.research.factories import random_tick_bars


def test_run_many_matches_single_backtests_in_order() -> None:
    bars, sessions = random_tick_bars(21, 4_000)
    config = ExecutionConfig(Decimal("0.25"), Decimal(5), Decimal("0.62"), size=2,
                             stop_loss_ticks=8)
    grid = [{"fast": f, "slow": s} for f in (2, 5, 9) for s in (12, 30)]
    many = run_many(bars, "sma_cross", grid, config, sessions=sessions, threads=2)
    single = [run_backtest(bars, build_strategy("sma_cross", p), config, sessions=sessions).metrics
              for p in grid]
    assert many == single
    assert len({m.net_pnl for m in many}) == len(grid)  # the parameters did matter
