"""Fill semantics of the backtest engine on hand-written bars (prices in ticks of 0.25,
point value 5: one tick is $1.25)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from botwarden.domain.metrics import max_drawdown_pct
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.research import fill_kernel as fk
from botwarden.research.engine import BacktestResult, ExecutionConfig, simulate_targets
from tests.research.factories import rows_to_tick_bars

FLAT = [(100, 100, 100, 100)]


def config(**overrides: object) -> ExecutionConfig:
    base = {"size": 1, "commission_per_side": Decimal(0), "cash": Decimal(10_000)}
    base.update(overrides)
    return ExecutionConfig(Decimal("0.25"), Decimal(5), **base)  # type: ignore[arg-type]


def simulate(rows: list[tuple[int, int, int, int]], targets: list[int], cfg: ExecutionConfig,
             flatten: list[bool] | None = None, days: list[int] | None = None) -> BacktestResult:
    bars = rows_to_tick_bars(rows)
    return simulate_targets(
        bars, np.array(targets, dtype=np.int8), cfg,
        days=np.zeros(len(rows), np.int64) if days is None else np.array(days, np.int64),
        flatten=None if flatten is None else np.array(flatten),
    )


def trades(result: BacktestResult) -> list[tuple[int, ...]]:
    """(entry bar, exit bar, side, qty, entry ticks, exit ticks, reason) per trade."""
    return [tuple(int(x) for x in row) for row in result.records]


ROWS = [(100, 101, 99, 100), (101, 103, 100, 102), (102, 104, 101, 103), (103, 104, 102, 103),
        (105, 106, 104, 105)]


def test_market_orders_fill_at_the_next_open() -> None:
    result = simulate(ROWS, [1, 1, 0, 0, 0], config())
    assert trades(result) == [(1, 3, 1, 1, 101, 103, fk.EXIT_SIGNAL)]
    assert result.pnls.tolist() == [2 * 1.25]


def test_slippage_goes_against_us_on_both_sides() -> None:
    long = simulate(ROWS, [1, 1, 0, 0, 0], config(slippage_ticks=2))
    assert trades(long) == [(1, 3, 1, 1, 103, 101, fk.EXIT_SIGNAL)]
    short = simulate(ROWS, [-1, -1, 0, 0, 0], config(slippage_ticks=2))
    assert trades(short) == [(1, 3, -1, 1, 99, 105, fk.EXIT_SIGNAL)]
    assert short.pnls.tolist() == [-6 * 1.25]


def test_reversal_exits_and_enters_at_the_same_open() -> None:
    result = simulate(ROWS, [1, -1, -1, -1, -1], config())
    assert trades(result) == [(1, 2, 1, 1, 101, 102, fk.EXIT_SIGNAL)]
    assert result.open_position is not None and result.open_position.side == "SHORT"
    assert result.open_position.entry_price == Decimal("25.50")  # 102 ticks
    assert result.metrics.final_equity == pytest.approx(10_000 + 1.25 + (102 - 105) * 1.25)


def test_a_target_on_the_last_bar_is_never_filled() -> None:
    result = simulate(ROWS, [0, 0, 0, 0, 1], config())
    assert result.records.shape[0] == 0 and result.open_position is None


STOP_ROWS = [(100, 100, 100, 100), (100, 102, 99, 101), (101, 102, 96, 97), (97, 98, 90, 95)]


def test_stop_triggers_at_touch_and_fills_at_the_stop_minus_slippage() -> None:
    result = simulate(STOP_ROWS, [1, 1, 1, 1], config(stop_loss_ticks=4, slippage_ticks=1))
    # entry 101 (100 + slippage), stop 97: bar 2 trades at 96 -> filled 97 - 1
    assert trades(result) == [(1, 2, 1, 1, 101, 96, fk.EXIT_STOP_LOSS)]


def test_stop_not_reached_does_not_fill() -> None:
    result = simulate(STOP_ROWS[:2] + [(101, 102, 98, 99)], [1, 1, 1], config(stop_loss_ticks=4))
    assert result.records.shape[0] == 0 and result.open_position is not None


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 92, 88, 91)]
    result = simulate(rows, [1, 1, 1], config(stop_loss_ticks=4))
    assert trades(result) == [(1, 2, 1, 1, 100, 90, fk.EXIT_STOP_LOSS)]


def test_stop_on_the_entry_bar_fills_at_the_stop_not_the_open() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 90, 92)]
    result = simulate(rows, [-1, -1], config(stop_loss_ticks=4))
    assert trades(result) == []  # short: the stop is above, 104 not reached
    result = simulate(rows, [1, 1], config(stop_loss_ticks=4))
    assert trades(result) == [(1, 1, 1, 1, 100, 96, fk.EXIT_STOP_LOSS)]


def test_profit_target_fills_only_when_price_trades_through() -> None:
    touch = [(100, 100, 100, 100), (100, 104, 99, 103)]
    assert simulate(touch, [1, 1], config(profit_target_ticks=4)).records.shape[0] == 0
    through = [(100, 100, 100, 100), (100, 105, 99, 103)]
    result = simulate(through, [1, 1], config(profit_target_ticks=4, slippage_ticks=1))
    # entry 101 with slippage, limit 105 needs a trade above 105: not yet
    assert result.records.shape[0] == 0
    result = simulate(through, [1, 1], config(profit_target_ticks=4))
    assert trades(result) == [(1, 1, 1, 1, 100, 104, fk.EXIT_PROFIT_TARGET)]


def test_short_profit_target_gap_fills_at_the_better_open() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 91, 89, 90)]
    result = simulate(rows, [-1, -1, -1], config(profit_target_ticks=4))
    assert trades(result) == [(1, 2, -1, 1, 100, 90, fk.EXIT_PROFIT_TARGET)]


def test_stop_first_when_one_bar_reaches_both() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 110, 90, 100)]
    result = simulate(rows, [1, 1, 1], config(stop_loss_ticks=4, profit_target_ticks=4))
    assert trades(result) == [(1, 2, 1, 1, 100, 96, fk.EXIT_STOP_LOSS)]


def test_after_a_forced_exit_the_engine_waits_for_a_new_target() -> None:
    rows = [(100, 100, 100, 100), (100, 101, 99, 100), (100, 101, 95, 96)] + FLAT * 5
    targets = [1, 1, 1, 1, 0, 1, 1, 1]
    result = simulate(rows, targets, config(stop_loss_ticks=4))
    # stopped on bar 2; target still long on bars 2-3: no re-entry; 0 then 1: re-entry at bar 6
    assert [t[:2] for t in trades(result)] == [(1, 2)]
    assert result.open_position is not None
    assert result.open_position.entry_time.minute == 6


def test_flatten_window_closes_at_its_first_open_and_blocks_entries() -> None:
    rows = [(100 + k, 101 + k, 99 + k, 100 + k) for k in range(8)]
    targets = [1, 1, 1, 1, 1, 1, -1, -1]
    flatten = [False, False, False, True, True, False, False, False]
    result = simulate(rows, targets, config(), flatten=flatten)
    assert trades(result) == [(1, 3, 1, 1, 101, 103, fk.EXIT_SESSION_FLATTEN)]
    # bar 5 is out of the window but the target is the stale long: stay flat until -1
    assert result.open_position is not None and result.open_position.side == "SHORT"
    assert result.open_position.entry_time.minute == 7


def test_fees_per_contract_per_side() -> None:
    result = simulate(ROWS, [1, 1, 0, 0, 0], config(size=2, commission_per_side=Decimal("0.62")))
    assert result.pnls.tolist() == [pytest.approx(2 * 2 * 1.25 - 4 * 0.62)]
    assert result.equity is not None
    # bar 1: entry fee of 2 contracts charged, position marked at 102 from 101
    assert result.equity[1] == pytest.approx(10_000 - 2 * 0.62 + 2 * 1.25)
    assert result.metrics.final_equity == pytest.approx(10_000 + 2 * 2 * 1.25 - 4 * 0.62)


def test_pre_trade_check_denies_oversized_entries_and_counts_them() -> None:
    result = simulate(ROWS, [1, 1, 1, 0, 0], config(size=2, max_order_qty=1))
    assert result.records.shape[0] == 0 and result.open_position is None
    assert result.denials == {"MAX_ORDER_SIZE": 3, "MAX_POSITION": 0}
    result = simulate(ROWS, [1, 1, 1, 0, 0], config(size=2, max_order_qty=2, max_position=1))
    assert result.denials == {"MAX_ORDER_SIZE": 0, "MAX_POSITION": 3}


def test_pre_trade_check_always_lets_a_position_be_reduced() -> None:
    cfg = config().vector()
    assert fk.check_order(cfg, 1, -1) == fk.ALLOWED
    assert fk.check_order(cfg, 0, 2) == fk.DENY_MAX_ORDER_SIZE
    assert fk.check_order(cfg, 1, 1) == fk.DENY_MAX_POSITION
    assert fk.check_order(cfg, -1, 2) == fk.DENY_MAX_ORDER_SIZE  # reversing in one order


def test_equity_curve_drawdown_and_daily_equity() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 90, 92), (92, 110, 92, 108)]
    result = simulate(rows, [1, 1, 1, 1], config(), days=[0, 0, 1, 1])
    assert result.equity is not None
    assert result.equity.tolist() == [10_000, 10_000, 10_000 - 8 * 1.25, 10_000 + 8 * 1.25]
    assert result.daily_equity.tolist() == [10_000, 10_000 + 8 * 1.25]
    assert result.metrics.days == 2
    expected = max_drawdown_pct(result.equity.tolist(), 10_000.0)
    assert result.metrics.max_drawdown_pct == pytest.approx(expected) == pytest.approx(0.1)


def test_the_bots_risk_config_sets_stops_and_pre_trade_limits() -> None:
    limits = parse_risk_limits({"max_contracts_per_order": 1, "max_position_contracts": 1,
                                "max_daily_loss_usd": "500", "max_drawdown_pct": "10",
                                "stop_loss_ticks": 4})
    cfg = config(size=2).with_risk_limits(limits)
    assert (cfg.stop_loss_ticks, cfg.profit_target_ticks) == (4, 0)
    result = simulate(ROWS, [1, 1, 0, 0, 0], cfg)
    assert result.records.shape[0] == 0 and result.denials["MAX_ORDER_SIZE"] == 2
