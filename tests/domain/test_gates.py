"""Promotion gates: the domain.md table, the extra requirements per stage, no evidence never
passes, each gate fails on its own evidence, the demo profile lightens volume and accepts
the recorded synthetic bars, and only it does."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.gates import (
    DEMO,
    STANDARD,
    ClosedTrade,
    GateProfile,
    HumanApproval,
    MarketDataProof,
    Performance,
    StageEvidence,
    WalkForward,
    evaluate_gates,
    gate_profile,
    performance_from_trades,
)
from botwarden.domain.stages import Stage

GATED = [Stage.TRIALS, Stage.PAPER, Stage.SHADOW, Stage.CANARY]
T0 = datetime(2026, 1, 5, 15, tzinfo=UTC)  # a Monday

# domain.md, "Promotion gates": leaving -> trades, win %, max DD %, PF, expectancy, Sharpe, days
TABLE = {
    Stage.TRIALS: (50, 35, 20, 1.2, 10, 0.5, None),
    Stage.PAPER: (100, 40, 15, 1.3, 15, 0.7, 5),
    Stage.SHADOW: (200, 45, 12, 1.4, 20, 0.9, 10),
    Stage.CANARY: (300, 48, 10, 1.5, 25, 1.0, 14),
}
TABLE_IDS = ("min_trades", "min_win_rate", "max_drawdown", "min_profit_factor",
             "min_expectancy", "min_sharpe", "min_days")
COMMON = {"min_losing_trades", "real_market_data", "positive_net_pnl"}
EXTRA = {
    Stage.TRIALS: {"autonomy_score", "recent_backtests_passed"},
    Stage.PAPER: set(),
    Stage.SHADOW: {"walk_forward_consistency", "overfit_ratio"},
    Stage.CANARY: {"walk_forward_consistency", "overfit_ratio", "stress_test", "step_up",
                   "approval_token"},
}

REAL = MarketDataProof("databento", "GLBX.MDP3", T0 - timedelta(days=365), T0)


def passing(stage: Stage) -> StageEvidence:
    """Evidence that meets every gate of `stage` with a margin."""
    return StageEvidence(
        performance=Performance(trades=400, losers=150, net_pnl=12000.0, win_rate_pct=60.0,
                                profit_factor=2.0, expectancy=30.0, sharpe=1.5,
                                max_drawdown_pct=5.0, days=20),
        market_data=REAL, walk_forward=WalkForward(0.8, 1.2), stress_passed=True,
        approval=HumanApproval(True, True), autonomy_score=80,
        recent_backtests=(True, True, True))


# One way to break each gate on its own.
BREAKERS = {
    "min_trades": lambda e: replace(e, performance=replace(e.performance, trades=3)),
    "min_win_rate": lambda e: replace(e, performance=replace(e.performance, win_rate_pct=10.0)),
    "max_drawdown": lambda e: replace(e, performance=replace(e.performance,
                                                             max_drawdown_pct=35.0)),
    "min_profit_factor": lambda e: replace(e, performance=replace(e.performance,
                                                                  profit_factor=1.0)),
    "min_expectancy": lambda e: replace(e, performance=replace(e.performance, expectancy=1.0)),
    "min_sharpe": lambda e: replace(e, performance=replace(e.performance, sharpe=0.1)),
    "min_days": lambda e: replace(e, performance=replace(e.performance, days=0)),
    "min_losing_trades": lambda e: replace(e, performance=replace(e.performance, losers=0)),
    # No profile accepts a proof without its provider (synthetic bars are checked below).
    "real_market_data": lambda e: replace(e, market_data=replace(REAL, provider=None)),
    "positive_net_pnl": lambda e: replace(e, performance=replace(e.performance, net_pnl=-5.0)),
    "walk_forward_consistency": lambda e: replace(e, walk_forward=WalkForward(0.3, 1.2)),
    "overfit_ratio": lambda e: replace(e, walk_forward=WalkForward(0.8, 3.0)),
    "stress_test": lambda e: replace(e, stress_passed=False),
    "step_up": lambda e: replace(e, approval=HumanApproval(False, True)),
    "approval_token": lambda e: replace(e, approval=HumanApproval(True, False)),
    "autonomy_score": lambda e: replace(e, autonomy_score=49),
    "recent_backtests_passed": lambda e: replace(e, recent_backtests=(True, False, True)),
}


@pytest.mark.parametrize("profile", [STANDARD, DEMO])
@pytest.mark.parametrize("stage", GATED)
def test_no_evidence_reports_every_gate_not_met(profile: GateProfile, stage: Stage) -> None:
    result = evaluate_gates(stage, StageEvidence(), profile)
    assert result.gates and not result.eligible
    for gate in result.gates:
        assert gate.actual is None and gate.passed is False, gate
        assert gate.unit and gate.required is not None


@pytest.mark.parametrize("stage", GATED)
def test_standard_thresholds_are_the_domain_table(stage: Stage) -> None:
    gates = {g.id: g for g in evaluate_gates(stage, StageEvidence()).gates}
    for gate_id, required in zip(TABLE_IDS, TABLE[stage], strict=True):
        if required is None:
            assert gate_id not in gates
        else:
            assert gates[gate_id].required == required, gate_id
    assert set(gates) == {i for i, r in zip(TABLE_IDS, TABLE[stage], strict=True)
                          if r is not None} | COMMON | EXTRA[stage]


def test_stage_extras_carry_domain_numbers() -> None:
    shadow = {g.id: g.required for g in evaluate_gates(Stage.SHADOW, StageEvidence()).gates}
    canary = {g.id: g.required for g in evaluate_gates(Stage.CANARY, StageEvidence()).gates}
    trials = {g.id: g.required for g in evaluate_gates(Stage.TRIALS, StageEvidence()).gates}
    assert (shadow["walk_forward_consistency"], shadow["overfit_ratio"]) == (0.5, 2.5)
    assert (canary["walk_forward_consistency"], canary["overfit_ratio"]) == (0.6, 2.0)
    assert (trials["autonomy_score"], trials["recent_backtests_passed"]) == (50, 3)
    assert trials["min_losing_trades"] == 1 and trials["positive_net_pnl"] == 0


@pytest.mark.parametrize("profile", [STANDARD, DEMO])
@pytest.mark.parametrize("stage", GATED)
def test_each_gate_fails_on_its_own(profile: GateProfile, stage: Stage) -> None:
    good = evaluate_gates(stage, passing(stage), profile)
    assert good.eligible and good.next_stage is not None
    for gate in good.gates:
        broken = evaluate_gates(stage, BREAKERS[gate.id](passing(stage)), profile)
        assert not broken.eligible
        assert [g.id for g in broken.failing] == [gate.id]


def test_thresholds_are_inclusive() -> None:
    exact = StageEvidence(
        performance=Performance(trades=50, losers=1, net_pnl=0.01, win_rate_pct=35.0,
                                profit_factor=1.2, expectancy=10.0, sharpe=0.5,
                                max_drawdown_pct=20.0),
        market_data=REAL, autonomy_score=50, recent_backtests=(True, True, True))
    assert evaluate_gates(Stage.TRIALS, exact).eligible
    shadow = replace(passing(Stage.SHADOW), walk_forward=WalkForward(0.5, 2.5))
    assert evaluate_gates(Stage.SHADOW, shadow).eligible


def test_zero_net_pnl_is_not_positive() -> None:
    evidence = replace(passing(Stage.PAPER),
                       performance=replace(passing(Stage.PAPER).performance, net_pnl=0.0))
    assert [g.id for g in evaluate_gates(Stage.PAPER, evidence).failing] == ["positive_net_pnl"]


@pytest.mark.parametrize("proof", [
    MarketDataProof(None, "GLBX.MDP3", T0 - timedelta(days=1), T0),
    MarketDataProof("databento", None, T0 - timedelta(days=1), T0),
    MarketDataProof("databento", "GLBX.MDP3", None, T0),
    MarketDataProof("databento", "GLBX.MDP3", T0, T0),
    MarketDataProof("synthetic", "SYNTH", T0 - timedelta(days=1), T0, synthetic=True),
])
def test_market_data_needs_provider_dataset_range_and_real_bars(proof: MarketDataProof) -> None:
    gate = {g.id: g for g in evaluate_gates(
        Stage.TRIALS, replace(passing(Stage.TRIALS), market_data=proof)).gates}
    assert gate["real_market_data"].actual is False and not gate["real_market_data"].passed
    assert "required: real market data recorded" in gate["real_market_data"].detail


SYNTHETIC = MarketDataProof("synthetic", "SYNTH", T0 - timedelta(days=30), T0, synthetic=True)


@pytest.mark.parametrize("stage", GATED)
def test_only_the_demo_profile_accepts_synthetic_bars(stage: Stage) -> None:
    evidence = replace(passing(stage), market_data=SYNTHETIC)
    standard = evaluate_gates(stage, evidence, STANDARD)
    assert [g.id for g in standard.failing] == ["real_market_data"]
    demo = {g.id: g for g in evaluate_gates(stage, evidence, DEMO).gates}
    gate = demo["real_market_data"]
    assert gate.passed and gate.actual is True and gate.required is True
    assert gate.detail == ("required: market data recorded (synthetic accepted: demo profile); "
                           "actual: synthetic synthetic/SYNTH 2025-12-06..2026-01-05")
    assert [p.name for p in (STANDARD, DEMO) if p.accepts_synthetic_data] == ["demo"]


@pytest.mark.parametrize("proof", [
    None,
    MarketDataProof("synthetic", None, T0 - timedelta(days=1), T0, synthetic=True),
    MarketDataProof("synthetic", "SYNTH", None, T0, synthetic=True),
    MarketDataProof("synthetic", "SYNTH", T0, T0, synthetic=True),
])
def test_demo_profile_still_needs_the_data_on_record(proof: MarketDataProof | None) -> None:
    evidence = replace(passing(Stage.PAPER), market_data=proof)
    result = evaluate_gates(Stage.PAPER, evidence, DEMO)
    assert [g.id for g in result.failing] == ["real_market_data"]


def test_negative_overfit_ratio_fails() -> None:
    evidence = replace(passing(Stage.SHADOW), walk_forward=WalkForward(0.9, -0.5))
    assert [g.id for g in evaluate_gates(Stage.SHADOW, evidence).failing] == ["overfit_ratio"]


@pytest.mark.parametrize(("recent", "ok"), [
    ((), False), ((True,), False), ((True, True), False), ((True, True, True), True),
    ((True, True, True, False), True), ((False, True, True, True), False),
])
def test_last_three_backtests(recent: tuple[bool, ...], ok: bool) -> None:
    evidence = replace(passing(Stage.TRIALS), recent_backtests=recent)
    gate = {g.id: g for g in evaluate_gates(Stage.TRIALS, evidence).gates}
    assert gate["recent_backtests_passed"].passed is ok


@pytest.mark.parametrize("stage", [Stage.LIVE, Stage.RETIRED])
def test_nothing_to_leave_to(stage: Stage) -> None:
    result = evaluate_gates(stage, passing(Stage.CANARY))
    assert result.gates == () and not result.eligible and result.next_stage is None


@pytest.mark.parametrize("stage", GATED)
def test_demo_profile_lightens_volume_only(stage: Stage) -> None:
    """Its thresholds: lighter on volume, the same elsewhere (the market-data gate's rule is
    the declared `accepts_synthetic_data`, tested above)."""
    standard = {g.id: g.required for g in evaluate_gates(stage, StageEvidence()).gates}
    demo = {g.id: g.required for g in evaluate_gates(stage, StageEvidence(), DEMO).gates}
    assert set(demo) == set(standard)
    for gate_id in standard:
        if gate_id in ("min_trades", "min_days"):
            assert demo[gate_id] < standard[gate_id]
        else:
            assert demo[gate_id] == standard[gate_id]


def test_profile_by_name_fails_closed() -> None:
    assert gate_profile("demo") is DEMO and gate_profile("standard") is STANDARD
    assert gate_profile("nonsense") is STANDARD and gate_profile(None) is STANDARD


def test_stored_metrics_with_bad_values_become_unknown() -> None:
    perf = Performance.from_mapping({"trades": 60, "win_rate": "55", "sharpe": math.nan,
                                     "profit_factor": math.inf, "losers": -1, "net_pnl": True,
                                     "expectancy": 12.5})
    assert perf == Performance(trades=60, expectancy=12.5)


def trade(day: int, pnl: float, hour: int = 0) -> ClosedTrade:
    return ClosedTrade(T0 + timedelta(days=day, hours=hour), pnl)


def test_performance_from_trades_known_example() -> None:
    # Mon +100, Tue -50, (Wed, Thu quiet), Fri +200 -> 5 weekdays
    trades = [trade(0, 100.0), trade(1, -50.0), trade(4, 200.0)]
    perf = performance_from_trades(trades, 10_000.0)
    assert perf is not None
    assert (perf.trades, perf.losers, perf.days) == (3, 1, 5)
    assert perf.net_pnl == pytest.approx(250.0)
    assert perf.win_rate_pct == pytest.approx(200 / 3)
    assert perf.profit_factor == pytest.approx(6.0)
    assert perf.expectancy == pytest.approx(250 / 3)
    assert perf.max_drawdown_pct == pytest.approx(50 / 10_100 * 100)
    assert perf.sharpe is not None and perf.sharpe > 0


def test_weekend_days_count_only_with_trades() -> None:
    friday_to_monday = [trade(4, 10.0), trade(7, -5.0)]
    perf = performance_from_trades(friday_to_monday, 10_000.0)
    assert perf is not None and perf.days == 2
    with_sunday = [*friday_to_monday, trade(6, 1.0)]
    perf = performance_from_trades(with_sunday, 10_000.0)
    assert perf is not None and perf.days == 3


def test_no_trades_no_performance() -> None:
    assert performance_from_trades([], 10_000.0) is None


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(-500, 500)), min_size=1,
                max_size=60))
def test_performance_from_trades_properties(raw: list[tuple[int, int]]) -> None:
    # Distinct exit times: trades closed at the same instant have no order to follow.
    trades = [ClosedTrade(T0 + timedelta(days=day, minutes=i), float(pnl))
              for i, (day, pnl) in enumerate(raw)]
    perf = performance_from_trades(trades, 50_000.0)
    assert perf is not None
    assert perf.trades == len(trades)
    assert perf.losers == sum(1 for _, pnl in raw if pnl < 0)
    assert perf.net_pnl == pytest.approx(sum(pnl for _, pnl in raw))
    assert perf.max_drawdown_pct is not None and 0 <= perf.max_drawdown_pct <= 100
    span = max(d for d, _ in raw) - min(d for d, _ in raw) + 1
    assert perf.days is not None and 1 <= perf.days <= span
    # Shuffling the record changes nothing: figures follow exit time, not row order.
    assert performance_from_trades(list(reversed(trades)), 50_000.0) == perf
