"""Research scores and verdicts (domain.md, "Research"): pure functions over stored metrics.

Every formula research ranks, selects or judges by lives here once:

- `tournament_score`: ranks sweep results. 0.4 Sharpe + 0.3 win rate + 0.2 profit factor
  + 0.1 consistency, with the win rate and consistency as fractions (0-1). The profit factor
  counts up to `PROFIT_FACTOR_CAP` (3, where the evolution fitness saturates too), so one
  lucky run with a tiny loss cannot outrank everything; an undefined profit factor (no
  losing trade) counts as the cap when something was won, 0 when nothing was.
- `evolution_fitness`: 0.35 Sharpe + 0.25 min(PF/3, 1) + 0.15 win rate + 0.15 (1 - 2 DD)
  + 0.10 min(expectancy/50, 1), each term clamped at 0 from below, win rate and drawdown
  as fractions; 0 under 10 trades. An undefined profit factor with winners is infinite in
  the limit, so its term is 1.
- `consistency`: share of periods (matrix cells, out-of-sample windows, sub-periods of a
  run) whose profit is strictly positive.
- `overfit_ratio`: in-sample Sharpe / out-of-sample Sharpe, with its edge cases decided.
- `plan_walk_forward`: the train/test/step windows, scaled down when the data is short.
- `judge_stress`: the stress test's pass rules, one per scenario.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botwarden.domain.jobs import JobType

# The job type that carries each research kind. domain.md names no job type for walk-forward
# or stress runs: a stress test is a handful of backtests (BACKTEST), a walk-forward a sweep
# over windows (SWEEP).
RUN_KIND_JOB_TYPE: Mapping[str, JobType] = {
    "BACKTEST": JobType.BACKTEST, "STRESS": JobType.BACKTEST,
    "SWEEP": JobType.SWEEP, "WALK_FORWARD": JobType.SWEEP,
    "MATRIX": JobType.MATRIX, "EVOLUTION": JobType.EVOLVE,
}

PROFIT_FACTOR_CAP = 3.0
MIN_TRADES_FOR_FITNESS = 10
EXPECTANCY_SCALE_USD = 50.0


def _num(value: Any) -> float:
    """A stored metric as a float; missing, boolean or non-finite values count as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def profit_factor_value(metrics: Mapping[str, Any]) -> float:
    """The profit factor, with an undefined one (no losing trade) read as infinite when
    something was won and as 0 when nothing was."""
    value = metrics.get("profit_factor")
    if value is None:
        return math.inf if _num(metrics.get("gross_profit")) > 0 else 0.0
    return max(_num(value), 0.0)


def tournament_score(metrics: Mapping[str, Any], consistency_value: float | None) -> float:
    """0.4 Sharpe + 0.3 win rate + 0.2 min(PF, 3) + 0.1 consistency (fractions for win rate
    and consistency; a missing consistency counts 0)."""
    return (0.4 * _num(metrics.get("sharpe"))
            + 0.3 * _num(metrics.get("win_rate")) / 100.0
            + 0.2 * min(profit_factor_value(metrics), PROFIT_FACTOR_CAP)
            + 0.1 * (consistency_value or 0.0))


@dataclass(frozen=True, slots=True)
class FitnessTerms:
    sharpe: float
    profit_factor: float
    win_rate: float
    drawdown: float
    expectancy: float

    @property
    def total(self) -> float:
        return self.sharpe + self.profit_factor + self.win_rate + self.drawdown + self.expectancy


def fitness_terms(metrics: Mapping[str, Any]) -> FitnessTerms:
    """Each weighted term of the evolution fitness, clamped at 0; all 0 under 10 trades."""
    if _num(metrics.get("trades")) < MIN_TRADES_FOR_FITNESS:
        return FitnessTerms(0.0, 0.0, 0.0, 0.0, 0.0)
    drawdown = _num(metrics.get("max_drawdown_pct")) / 100.0
    return FitnessTerms(
        sharpe=max(0.35 * _num(metrics.get("sharpe")), 0.0),
        profit_factor=max(0.25 * min(profit_factor_value(metrics) / 3.0, 1.0), 0.0),
        win_rate=max(0.15 * _num(metrics.get("win_rate")) / 100.0, 0.0),
        drawdown=max(0.15 * (1.0 - 2.0 * drawdown), 0.0),
        expectancy=max(0.10 * min(_num(metrics.get("expectancy")) / EXPECTANCY_SCALE_USD, 1.0),
                       0.0),
    )


def evolution_fitness(metrics: Mapping[str, Any]) -> float:
    return fitness_terms(metrics).total


def consistency(profits: Sequence[float]) -> float | None:
    """Share of strictly profitable periods; None without periods."""
    if not profits:
        return None
    return sum(1 for p in profits if p > 0) / len(profits)


def period_profits(daily_equity: Sequence[float], starting_equity: float,
                   periods: int) -> list[float]:
    """Split the days into `periods` contiguous groups of near-equal size (fewer when there
    are fewer days) and return each group's equity change, marked to market: the
    consistency of one run over its own sub-periods, without running it again."""
    days = len(daily_equity)
    count = min(periods, days)
    if count <= 0:
        return []
    base, extra = divmod(days, count)
    profits, start, previous = [], 0, starting_equity
    for k in range(count):
        end = start + base + (1 if k < extra else 0)
        closing = daily_equity[end - 1]
        profits.append(closing - previous)
        previous, start = closing, end
    return profits


def overfit_ratio(in_sample_sharpe: float, out_of_sample_sharpe: float) -> float | None:
    """In-sample Sharpe / out-of-sample Sharpe.

    - Out-of-sample Sharpe <= 0: None (the ratio is infinite or meaningless: there is no
      out-of-sample edge), and every overfit gate fails on it.
    - In-sample Sharpe <= 0 < out-of-sample Sharpe: 0.0, there was no in-sample edge to
      overfit (the performance gates judge such a strategy, not this ratio).
    """
    if not out_of_sample_sharpe > 0:
        return None
    if not in_sample_sharpe > 0:
        return 0.0
    return in_sample_sharpe / out_of_sample_sharpe


# --- walk-forward windows --------------------------------------------------------------------

DEFAULT_TRAIN_DAYS, DEFAULT_TEST_DAYS, DEFAULT_STEP_DAYS = 365, 90, 90
MIN_WALK_FORWARD_WINDOWS = 3


@dataclass(frozen=True, slots=True)
class WalkForwardPlan:
    train_days: int
    test_days: int
    step_days: int
    windows: int
    requested: tuple[int, int, int]
    note: str = ""

    @property
    def scaled(self) -> bool:
        return (self.train_days, self.test_days, self.step_days) != self.requested


def _window_count(total: float, train: int, test: int, step: int) -> int:
    if total < train + test:
        return 0
    return int((total - train - test) // step) + 1


def plan_walk_forward(total_days: float, train: int = DEFAULT_TRAIN_DAYS,
                      test: int = DEFAULT_TEST_DAYS, step: int = DEFAULT_STEP_DAYS,
                      min_windows: int = MIN_WALK_FORWARD_WINDOWS) -> WalkForwardPlan | None:
    """Rolling windows over `total_days` of data: window k trains on days
    [k*step, k*step + train) and tests on the `test` days after that.

    When fewer than `min_windows` windows fit, train, test and step are scaled down by one
    factor so that exactly `min_windows` fit, and the plan says so. None when even the
    scaled windows would be shorter than a day."""
    requested = (train, test, step)
    fitted = _window_count(total_days, train, test, step)
    if fitted >= min_windows:
        return WalkForwardPlan(train, test, step, fitted, requested)
    factor = total_days / (train + test + (min_windows - 1) * step)
    scaled = (int(train * factor), int(test * factor), int(step * factor))
    if min(scaled) < 1:
        return None
    windows = _window_count(total_days, *scaled)
    note = (f"only {total_days:.1f} days of data: train/test/step scaled from "
            f"{train}/{test}/{step} to {scaled[0]}/{scaled[1]}/{scaled[2]} days so that "
            f"{windows} windows fit")
    return WalkForwardPlan(*scaled, windows=windows, requested=requested, note=note)


# --- stress test -------------------------------------------------------------------------

# Scenario names and what each must show to pass (README "Research", stress test).
STRESS_RULES: Mapping[str, str] = {
    "costs_x2": "net PnL > 0 with commissions doubled",
    "slippage_x3": "net PnL > 0 with three times the slippage (at least 3 ticks)",
    "bootstrap": "5th percentile of final PnL > 0 and 95th percentile of max drawdown "
                 "<= the drawdown limit, over resampled trade sequences",
    "volatility_x1.5": "net PnL > 0 with bar ranges scaled 1.5x around the close",
    "volatility_x2": "max drawdown <= the drawdown limit with bar ranges scaled 2x",
}


@dataclass(frozen=True, slots=True)
class StressFigures:
    """What the rules read from one scenario (None: not measured)."""

    net_pnl: float | None = None
    max_drawdown_pct: float | None = None
    final_pnl_p5: float | None = None
    max_drawdown_p95: float | None = None


def stress_passes(scenario: str, figures: StressFigures, drawdown_limit_pct: float) -> bool:
    """The rule of `scenario` (see STRESS_RULES); unknown scenarios and missing figures fail."""
    if scenario in ("costs_x2", "slippage_x3", "volatility_x1.5"):
        return figures.net_pnl is not None and figures.net_pnl > 0
    if scenario == "volatility_x2":
        return (figures.max_drawdown_pct is not None
                and figures.max_drawdown_pct <= drawdown_limit_pct)
    if scenario == "bootstrap":
        return (figures.final_pnl_p5 is not None and figures.final_pnl_p5 > 0
                and figures.max_drawdown_p95 is not None
                and figures.max_drawdown_p95 <= drawdown_limit_pct)
    return False
