"""The fleet's plan and its parameter choice: the slots are valid bots of every built-in
strategy; the timeline keeps research, paper trading and live replay apart, oldest first;
a sweep's pick clears the gates with a margin, and says so when it cannot."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from botwarden.data.bar_store import BarStore
from botwarden.data.synth import write_synthetic
from botwarden.demo.plan import FLEET, FleetShape, FleetSlot, plan_timeline
from botwarden.demo.selection import choose, trades_needed
from botwarden.domain.errors import DomainError
from botwarden.domain.gates import DEMO, STANDARD, MarketDataProof
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.domain.stages import Stage
from botwarden.research.catalogue import validate_params
from botwarden.research.strategies import STRATEGIES
from tests.demo.fleet_support import DAYS, END, SEED, SHAPE


def test_the_fleet_is_a_dozen_traders_and_every_strategy_kind() -> None:
    assert {s.kind for s in FLEET} == set(STRATEGIES)
    reverting = [s for s in FLEET if s.kind in ("vwap_reversion", "rsi_reversion")]
    assert len(reverting) == 12 and {s.symbol for s in reverting} == {"MES", "MNQ"}
    assert sum(s.aims_for is Stage.SHADOW for s in reverting) == 6
    for slot in FLEET:
        limits = parse_risk_limits(slot.risk_config())
        assert limits.stop_loss_ticks == slot.stop_loss_ticks and limits.profit_target_ticks
        assert limits.flatten_intraday and limits.max_contracts_per_order == 1
        names = list(slot.grid)
        for values in itertools.product(*(slot.grid[n] for n in names)):  # all valid bots
            validate_params(slot.kind, dict(zip(names, values, strict=True)))
    FleetShape()  # distinct names and research


def test_daily_loss_limits_leave_room_for_a_few_stops() -> None:
    wide = FleetSlot("w", "MNQ", "vwap_reversion", {"band_ticks": (300,)}, 1000, 2000)
    tight = FleetSlot("t", "MES", "vwap_reversion", {"band_ticks": (60,)}, 40, 80)
    assert wide.max_daily_loss_usd == 2500  # 5 stops of 1,000 ticks at $0.50
    assert tight.max_daily_loss_usd == 1000  # the floor


def test_shapes_refuse_twin_slots() -> None:
    with pytest.raises(ValueError, match="distinct"):
        FleetShape(slots=(FLEET[0], FLEET[0]))


def test_timeline_keeps_research_paper_and_live_apart(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    write_synthetic(store, "MES", DAYS, seed=SEED, end=END)
    t = plan_timeline(store, SHAPE)
    assert t.history_start < t.paper_start < t.shadow_live_start < t.paper_live_start
    assert t.paper_live_start < t.history_end
    starts = [w[0] for w in t.backtest_windows]
    ends = [w[1] for w in t.backtest_windows]
    assert starts == sorted(starts) and ends == sorted(ends) and ends[-1] == t.paper_start
    assert len({e - s for s, e in t.backtest_windows}) <= 2  # one lookback (DST aside)
    assert all(t.history_start <= s for s in starts)
    local = t.paper_live_start.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (9, 30)
    assert t.shadow_live_start.astimezone(ZoneInfo("America/New_York")).hour == 18
    assert t.research_sessions + t.paper_sessions + t.live_sessions == 14


def test_timeline_refuses_a_history_too_short(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    write_synthetic(store, "MES", 5, seed=SEED, end=END)
    with pytest.raises(DomainError) as refused:
        plan_timeline(store, FleetShape())
    assert refused.value.code == "DEMO_HISTORY_TOO_SHORT"


PROOF = MarketDataProof("synthetic", "SYNTH", datetime(2026, 1, 5, tzinfo=UTC),
                        datetime(2026, 3, 5, tzinfo=UTC), synthetic=True)


def _row(rank: int, expectancy: float, trades: int = 200, pf: float = 1.5,
         **params: int) -> dict[str, Any]:
    return {"rank": rank, "params": params or {"band_ticks": rank},
            "metrics": {"trades": trades, "losers": trades // 4, "net_pnl": expectancy * trades,
                        "win_rate": 60.0, "profit_factor": pf, "expectancy": expectancy,
                        "sharpe": 2.0, "max_drawdown_pct": 3.0, "days": 60}}


def test_choice_prefers_the_best_expectancy_cleared_with_a_margin() -> None:
    rows = [_row(1, 30.0, trades=40), _row(2, 14.0), _row(3, 25.0), _row(4, 11.0)]
    choice = choose(rows, PROOF, DEMO, min_trades=100, expectancy_margin=1.2)
    assert choice is not None and choice.params == {"band_ticks": 3}
    assert "with a margin" in choice.reason


def test_choice_falls_back_to_gates_without_margin_then_to_the_sweeps_best() -> None:
    thin = [_row(1, 11.0), _row(2, 10.5)]
    choice = choose(thin, PROOF, DEMO, min_trades=100, expectancy_margin=1.2)
    assert choice is not None and choice.params == {"band_ticks": 1}
    assert "none with the margin" in choice.reason
    losing = [_row(2, -3.0, pf=0.8), _row(1, -1.0, pf=0.9)]
    choice = choose(losing, PROOF, DEMO, min_trades=100, expectancy_margin=1.2)
    assert choice is not None and choice.params == {"band_ticks": 1}
    assert "no combination clears" in choice.reason
    # Under the standard profile synthetic evidence clears nothing.
    choice = choose([_row(1, 30.0), _row(2, 40.0)], PROOF, STANDARD, min_trades=10,
                    expectancy_margin=1.0)
    assert choice is not None and "no combination clears" in choice.reason
    assert choose([], PROOF, DEMO, min_trades=1, expectancy_margin=1.0) is None


def test_trades_needed_for_the_paper_period_ahead() -> None:
    assert trades_needed(DEMO, Stage.PAPER, research_sessions=60, paper_sessions=10,
                         margin=1.0) == DEMO.stages[Stage.TRIALS].min_trades
    # PAPER needs 20 trades in 10 sessions: 120 over 60 research sessions, with the margin.
    assert trades_needed(DEMO, Stage.SHADOW, research_sessions=60, paper_sessions=10,
                         margin=1.5) == pytest.approx(180.0)


def test_windows_end_where_the_paper_period_begins(tmp_path: Path) -> None:
    store = BarStore(tmp_path)
    write_synthetic(store, "MES", DAYS, seed=SEED, end=END)
    t = plan_timeline(store, FleetShape(slots=SHAPE.slots, live_sessions=1, paper_sessions=2,
                                        window_shifts=(0,)))
    assert t.backtest_windows == ((t.history_start, t.paper_start),)
    assert t.paper_start - t.history_start > timedelta(days=10)
