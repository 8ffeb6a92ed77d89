"""The autonomy score: five parts with domain.md's weights, tiers at 85/70/50, bands and
ratios at their edges, bounded and monotone in good evidence."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.autonomy import (
    AutonomyInputs,
    AutonomyScore,
    Tier,
    score_account,
    score_bot,
    tier_for,
)
from botwarden.domain.gates import Performance

WEIGHTS = {"data_reliability": 20, "decision_quality": 25, "risk_discipline": 25,
           "execution_health": 20, "supervisor_trust": 10}

GOOD = Performance(trades=80, losers=30, net_pnl=2500.0, win_rate_pct=62.5, profit_factor=1.9,
                   expectancy=31.0, sharpe=1.6, max_drawdown_pct=4.0, days=40)
PERFECT = AutonomyInputs(backtest_count=8, market_data_proven=True, performance=GOOD,
                         heartbeat_age_seconds=2.0, orders=100, rejected_orders=0,
                         last_backtest_age_days=1.0, days_since_last_kill=None)


def part(score: AutonomyScore, part_id: str) -> float:
    return next(p.score for p in score.parts if p.id == part_id)


@pytest.mark.parametrize(("value", "tier"), [
    (100, Tier.FULL_AUTONOMY), (85, Tier.FULL_AUTONOMY), (84.9, Tier.SEMI_AUTONOMOUS),
    (70, Tier.SEMI_AUTONOMOUS), (69, Tier.SUPERVISED), (50, Tier.SUPERVISED),
    (49.9, Tier.LOCKED), (0, Tier.LOCKED),
])
def test_tiers(value: float, tier: Tier) -> None:
    assert tier_for(value) is tier


def test_parts_and_weights() -> None:
    score = score_bot(PERFECT)
    assert {p.id: p.max_score for p in score.parts} == WEIGHTS
    assert score.score == 100 and score.tier is Tier.FULL_AUTONOMY
    for p in score.parts:
        assert p.score == pytest.approx(sum(c.points for c in p.checks))
        assert sum(c.max_points for c in p.checks) == p.max_score


def test_no_evidence_is_locked() -> None:
    score = score_bot(AutonomyInputs())
    # Only "no open breaker" (3) and "no recent kill" (3) hold without any evidence.
    assert score.score == 6 and score.tier is Tier.LOCKED


def test_a_trials_bot_with_good_backtests_can_reach_the_trials_floor() -> None:
    trials = AutonomyInputs(backtest_count=3, market_data_proven=True, performance=GOOD,
                            last_backtest_age_days=0.0)
    assert score_bot(trials).score >= 50


@pytest.mark.parametrize(("drawdown", "points"), [
    (0.0, 15), (9.99, 15), (10.0, 10), (14.99, 10), (15.0, 5), (19.99, 5), (20.0, 0),
    (55.0, 0), (None, 0),
])
def test_drawdown_bands(drawdown: float | None, points: float) -> None:
    inputs = replace(PERFECT, performance=replace(GOOD, max_drawdown_pct=drawdown))
    checks = {c.id: c.points for p in score_bot(inputs).parts for c in p.checks}
    assert checks["drawdown_band"] == points


@pytest.mark.parametrize(("losers", "points"), [
    (0, 0), (19, 0), (20, 10), (60, 10), (61, 0), (100, 0),
])
def test_loser_ratio_between_point_two_and_point_six(losers: int, points: float) -> None:
    inputs = replace(PERFECT, performance=replace(GOOD, trades=100, losers=losers))
    checks = {c.id: c.points for p in score_bot(inputs).parts for c in p.checks}
    assert checks["loser_ratio"] == points


def test_stale_heartbeat_rejections_breaker_and_kills_cost_points() -> None:
    base = score_bot(PERFECT)
    stale = score_bot(replace(PERFECT, heartbeat_age_seconds=31.0))
    assert part(stale, "execution_health") == part(base, "execution_health") - 6
    rejected = score_bot(replace(PERFECT, rejected_orders=20))
    assert part(rejected, "execution_health") == part(base, "execution_health") - 6
    tripped = score_bot(replace(PERFECT, circuit_open=True, days_since_last_kill=2.0,
                                last_backtest_age_days=45.0))
    assert part(tripped, "supervisor_trust") == 0
    killed_now = score_bot(replace(PERFECT, killed=True))
    assert part(killed_now, "supervisor_trust") == 7


def test_losing_bot_scores_no_decision_quality() -> None:
    losing = replace(GOOD, net_pnl=-10.0, win_rate_pct=0.0, sharpe=-1.0)
    assert part(score_bot(replace(PERFECT, performance=losing)), "decision_quality") == 0


INPUTS = st.builds(
    AutonomyInputs,
    backtest_count=st.integers(0, 20), market_data_proven=st.booleans(),
    performance=st.none() | st.builds(
        Performance, trades=st.none() | st.integers(0, 1000),
        losers=st.none() | st.integers(0, 1000),
        net_pnl=st.none() | st.floats(-1e6, 1e6),
        win_rate_pct=st.none() | st.floats(0, 100), sharpe=st.none() | st.floats(-10, 10),
        max_drawdown_pct=st.none() | st.floats(0, 100)),
    heartbeat_age_seconds=st.none() | st.floats(0, 1e5), orders=st.integers(0, 500),
    rejected_orders=st.integers(0, 500),
    last_backtest_age_days=st.none() | st.floats(0, 1000), circuit_open=st.booleans(),
    killed=st.booleans(), days_since_last_kill=st.none() | st.floats(0, 1000),
).filter(lambda i: i.rejected_orders <= i.orders)


@given(INPUTS)
def test_score_is_bounded_and_consistent(inputs: AutonomyInputs) -> None:
    score = score_bot(inputs)
    assert 0 <= score.score <= 100 and score.tier is tier_for(score.score)
    for p in score.parts:
        assert 0 <= p.score <= p.max_score


@given(INPUTS, st.integers(1, 10))
def test_more_backtests_and_proof_never_lower_the_score(inputs: AutonomyInputs,
                                                        more: int) -> None:
    better = replace(inputs, backtest_count=inputs.backtest_count + more,
                     market_data_proven=True, circuit_open=False)
    assert score_bot(better).score >= score_bot(inputs).score


def test_account_score_is_the_mean() -> None:
    high, low = score_bot(PERFECT), score_bot(AutonomyInputs())
    account = score_account([high, low])
    assert account.score == round((high.score + low.score) / 2)
    assert account.tier is tier_for(account.score)
    for k, p in enumerate(account.parts):
        assert p.score == pytest.approx((high.parts[k].score + low.parts[k].score) / 2)
    empty = score_account([])
    assert empty.score == 0 and empty.tier is Tier.LOCKED
    assert [p.id for p in empty.parts] == list(WEIGHTS)
