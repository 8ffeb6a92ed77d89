"""Choosing a demo bot's parameters from its slot's sweep, as a researcher would: among
the combinations whose backtest over the research history clears the TRIALS gates with a
margin (and trades often enough for the paper period ahead), the one with the best
expectancy. In-sample choices flatter: the paper period, which the sweep never saw, is
where that shows (and a bot whose paper trades fail stays in PAPER).

Fallbacks, each said in `reason`: the best expectancy among combinations that clear the
gates without the margin; else the sweep's own best (by its ranking), whose backtests will
then fail the gates on the record, so the bot stays in TRIALS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from botwarden.domain.gates import (
    GateProfile,
    MarketDataProof,
    Performance,
    StageEvidence,
    evaluate_gates,
)
from botwarden.domain.stages import Stage
from botwarden.research.run_kinds import NOT_PER_BACKTEST


@dataclass(frozen=True, slots=True)
class Choice:
    params: dict[str, Any]
    metrics: dict[str, Any]
    reason: str


def _passes_trials(metrics: Mapping[str, Any], proof: MarketDataProof,
                   profile: GateProfile) -> bool:
    evaluation = evaluate_gates(Stage.TRIALS, StageEvidence(Performance.from_mapping(metrics),
                                                            proof), profile)
    return all(g.passed for g in evaluation.gates if g.id not in NOT_PER_BACKTEST)


def trades_needed(profile: GateProfile, aims_for: Stage, *, research_sessions: int,
                  paper_sessions: int, margin: float) -> float:
    """Research-history trades for enough volume where the bot is headed: the TRIALS
    minimum, or (bound for SHADOW) the PAPER minimum over the shorter paper period."""
    trials = profile.stages[Stage.TRIALS].min_trades
    if aims_for is not Stage.SHADOW or paper_sessions <= 0:
        return margin * trials
    paper = profile.stages[Stage.PAPER].min_trades
    return margin * max(trials, paper * research_sessions / paper_sessions)


def choose(rows: Iterable[Mapping[str, Any]], proof: MarketDataProof, profile: GateProfile,
           *, min_trades: float, expectancy_margin: float) -> Choice | None:
    """The parameters to give the bot, from a grid sweep's result rows ({params, metrics,
    rank}); None for a sweep without rows."""
    ranked = sorted(rows, key=lambda r: r.get("rank") or 0)
    if not ranked:
        return None
    wanted = profile.stages[Stage.TRIALS].min_expectancy_usd * expectancy_margin
    passing = [r for r in ranked if _passes_trials(r["metrics"], proof, profile)]
    comfortable = [r for r in passing if (r["metrics"].get("trades") or 0) >= min_trades
                   and (r["metrics"].get("expectancy") or 0) >= wanted]

    def best(candidates: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        return max(candidates, key=lambda r: r["metrics"].get("expectancy") or 0)

    if comfortable:
        row, reason = best(comfortable), (
            f"best expectancy of {len(comfortable)} combinations clearing the TRIALS gates "
            f"with a margin (expectancy >= {wanted:g}, trades >= {min_trades:g})")
    elif passing:
        row, reason = best(passing), (
            f"best expectancy of {len(passing)} combinations clearing the TRIALS gates "
            "(none with the margin)")
    else:
        row, reason = ranked[0], "no combination clears the TRIALS gates: the sweep's best"
    return Choice(dict(row["params"]), dict(row["metrics"]), reason)

