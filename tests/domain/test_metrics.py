"""Metrics against hand-computed examples."""

from __future__ import annotations

import math

import pytest

from botwarden.domain.metrics import (
    TradeStats,
    compute_metrics,
    daily_returns,
    max_drawdown_pct,
    sharpe_ratio,
)


def test_trade_stats_by_hand() -> None:
    stats = TradeStats.from_pnls([100.0, -50.0, 0.0, 30.0, -20.0])
    assert (stats.trades, stats.winners, stats.losers) == (5, 2, 2)
    assert (stats.gross_profit, stats.gross_loss, stats.net_pnl) == (130.0, 70.0, 60.0)
    assert stats.win_rate_pct == 40.0  # the break-even trade is not a win
    assert stats.profit_factor == pytest.approx(130 / 70)
    assert stats.expectancy == 12.0


def test_no_losers_has_no_profit_factor_and_no_trades_has_zeros() -> None:
    assert TradeStats.from_pnls([5.0, 7.0]).profit_factor is None
    empty = TradeStats.from_pnls([])
    assert (empty.win_rate_pct, empty.expectancy, empty.profit_factor) == (0.0, 0.0, None)


def test_daily_returns_start_from_the_starting_equity() -> None:
    assert daily_returns([110.0, 99.0, 99.0], 100.0) == pytest.approx([0.1, -0.1, 0.0])
    assert daily_returns([50.0, 0.0, 10.0], 100.0) == pytest.approx([-0.5, -1.0])  # no base


def test_sharpe_by_hand() -> None:
    # mean 0.02/3, sample sd sqrt(0.0014/3 / 2): ratio 1/sqrt(21), times sqrt(252) = 2 sqrt(12)
    assert sharpe_ratio([0.01, -0.01, 0.02]) == pytest.approx(4 * math.sqrt(3))
    assert sharpe_ratio([0.01, 0.01]) == 0.0
    assert sharpe_ratio([0.03]) == 0.0


def test_max_drawdown_by_hand() -> None:
    assert max_drawdown_pct([100, 120, 90, 130, 117], 100) == pytest.approx(25.0)
    assert max_drawdown_pct([90, 95], 100) == pytest.approx(10.0)  # from the start
    assert max_drawdown_pct([100, 101, 102], 100) == 0.0


def test_compute_metrics_assembles_the_figures() -> None:
    stats = TradeStats.from_pnls([300.0, -100.0])
    metrics = compute_metrics(stats, [10_100.0, 10_200.0], starting_equity=10_000.0,
                              final_equity=10_200.0, drawdown_pct=1.5)
    assert metrics.trades == 2 and metrics.losers == 1 and metrics.days == 2
    assert metrics.net_pnl == 200.0 and metrics.expectancy == 100.0
    assert metrics.win_rate == 50.0 and metrics.profit_factor == 3.0
    assert metrics.sharpe == pytest.approx(sharpe_ratio([0.01, 100 / 10_100]))
    assert metrics.as_dict()["max_drawdown_pct"] == 1.5
