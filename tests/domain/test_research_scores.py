"""The research formulas of domain.md, exactly: evolution fitness, tournament score,
consistency, overfit ratio, walk-forward windows and the stress rules."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.research import (
    StressFigures,
    consistency,
    evolution_fitness,
    fitness_terms,
    overfit_ratio,
    period_profits,
    plan_walk_forward,
    stress_passes,
    tournament_score,
)

GOOD = {"trades": 40, "sharpe": 1.2, "profit_factor": 1.8, "win_rate": 55.0,
        "max_drawdown_pct": 12.0, "expectancy": 20.0, "gross_profit": 900.0}


def test_fitness_is_the_weighted_sum_of_domain_md() -> None:
    expected = (0.35 * 1.2 + 0.25 * min(1.8 / 3, 1) + 0.15 * 0.55 + 0.15 * (1 - 2 * 0.12)
                + 0.10 * min(20 / 50, 1))
    assert evolution_fitness(GOOD) == pytest.approx(expected, abs=1e-12)


def test_fitness_terms_saturate_and_clamp_at_zero() -> None:
    rich = {**GOOD, "profit_factor": 7.5, "expectancy": 400.0}
    terms = fitness_terms(rich)
    assert terms.profit_factor == pytest.approx(0.25) and terms.expectancy == pytest.approx(0.10)
    poor = {**GOOD, "sharpe": -3.0, "max_drawdown_pct": 75.0, "expectancy": -80.0}
    terms = fitness_terms(poor)
    assert terms.sharpe == 0 and terms.drawdown == 0 and terms.expectancy == 0
    assert terms.total == pytest.approx(0.25 * 0.6 + 0.15 * 0.55)


def test_fitness_is_zero_under_ten_trades_and_pf_without_losers_saturates() -> None:
    assert evolution_fitness({**GOOD, "trades": 9}) == 0.0
    no_losers = {**GOOD, "profit_factor": None}
    assert fitness_terms(no_losers).profit_factor == pytest.approx(0.25)
    nothing_won = {**GOOD, "profit_factor": None, "gross_profit": 0.0}
    assert fitness_terms(nothing_won).profit_factor == 0.0


@given(st.fixed_dictionaries({
    "trades": st.integers(0, 10_000), "sharpe": st.floats(-50, 50),
    "profit_factor": st.none() | st.floats(0, 1e6), "win_rate": st.floats(0, 100),
    "max_drawdown_pct": st.floats(0, 100), "expectancy": st.floats(-1e4, 1e4),
    "gross_profit": st.floats(0, 1e7)}))
def test_every_fitness_term_is_non_negative_and_bounded_but_sharpe(metrics: dict) -> None:
    terms = fitness_terms(metrics)
    assert min(terms.sharpe, terms.profit_factor, terms.win_rate, terms.drawdown,
               terms.expectancy) >= 0
    assert terms.profit_factor <= 0.25 and terms.win_rate <= 0.15
    assert terms.drawdown <= 0.15 and terms.expectancy <= 0.10


def test_tournament_score() -> None:
    assert tournament_score(GOOD, 0.7) == pytest.approx(0.4 * 1.2 + 0.3 * 0.55 + 0.2 * 1.8
                                                        + 0.1 * 0.7)
    capped = {**GOOD, "profit_factor": 40.0}
    assert tournament_score(capped, None) == pytest.approx(0.4 * 1.2 + 0.3 * 0.55 + 0.2 * 3)


def test_consistency_and_period_profits() -> None:
    assert consistency([]) is None
    assert consistency([1.0, 0.0, -2.0, 3.0]) == 0.5
    # 5 days in 2 periods: 3 + 2 days, profits marked from the starting equity
    assert period_profits([101, 99, 104, 104, 110], 100.0, 2) == [4.0, 6.0]
    assert period_profits([101, 102], 100.0, 10) == [1.0, 1.0]
    assert period_profits([], 100.0, 3) == []


def test_overfit_ratio_edge_cases() -> None:
    assert overfit_ratio(2.0, 1.0) == 2.0
    assert overfit_ratio(2.0, 0.0) is None
    assert overfit_ratio(2.0, -0.5) is None
    assert overfit_ratio(-1.0, 0.5) == 0.0
    assert overfit_ratio(math.nan, 1.0) == 0.0


def test_walk_forward_default_plan_and_scaling() -> None:
    full = plan_walk_forward(3 * 365)
    assert full is not None and not full.scaled
    assert (full.train_days, full.test_days, full.step_days) == (365, 90, 90)
    assert full.windows == (3 * 365 - 455) // 90 + 1
    short = plan_walk_forward(120)
    assert short is not None and short.scaled and short.windows >= 3
    assert short.train_days + short.test_days + 2 * short.step_days <= 120
    assert "scaled" in short.note
    assert plan_walk_forward(3) is None


@pytest.mark.parametrize(("scenario", "figures", "passed"), [
    ("costs_x2", StressFigures(net_pnl=10.0), True),
    ("costs_x2", StressFigures(net_pnl=0.0), False),
    ("slippage_x3", StressFigures(net_pnl=-1.0), False),
    ("volatility_x1.5", StressFigures(net_pnl=0.5), True),
    ("volatility_x2", StressFigures(max_drawdown_pct=19.0), True),
    ("volatility_x2", StressFigures(max_drawdown_pct=21.0), False),
    ("bootstrap", StressFigures(final_pnl_p5=5.0, max_drawdown_p95=10.0), True),
    ("bootstrap", StressFigures(final_pnl_p5=-5.0, max_drawdown_p95=10.0), False),
    ("bootstrap", StressFigures(final_pnl_p5=5.0, max_drawdown_p95=30.0), False),
    ("bootstrap", StressFigures(), False),
    ("unknown", StressFigures(net_pnl=1.0), False),
])
def test_stress_rules(scenario: str, figures: StressFigures, passed: bool) -> None:
    assert stress_passes(scenario, figures, drawdown_limit_pct=20.0) is passed
