"""The unit of parallel research work: one strategy kind, a few parameter sets, one set of
bars (by reference), and the account windows ("segments") to score each run on.

For each parameter set the strategy runs once over all the referenced bars, from its
initial state, so every segment sees a strategy warmed up on the bars before it (as a
runner would be); each segment then gets a fresh account that trades the strategy's targets
from the segment's first bar. A task returns one summary per (parameter set, segment):
the metrics, the profit (equity change, marked to market) and the consistency over
`periods` sub-periods (and, when asked, the daily returns: a walk-forward pools them).
No equity curve or trade list leaves the worker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from botwarden.domain.metrics import daily_returns
from botwarden.domain.research import consistency, period_profits
from botwarden.research.engine import ExecutionConfig, simulate_targets
from botwarden.research.market import DataRef, MarketBars, load_ref
from botwarden.research.strategies import get_spec

Summary = dict[str, Any]
DEFAULT_PERIODS = 10


@dataclass(frozen=True, slots=True)
class EvalTask:
    ref: DataRef
    kind: str
    param_sets: tuple[Mapping[str, Any], ...]
    segments: tuple[tuple[int, int], ...]  # [start_ns, end_ns) account windows
    config: ExecutionConfig
    flatten_minutes: int = 0
    periods: int = DEFAULT_PERIODS
    volatility: float = 1.0
    returns: bool = False  # also return each segment's daily returns


def evaluate_task(task: EvalTask) -> list[list[Summary]]:
    """Run in a worker process (or in-process): [parameter set][segment] -> summary."""
    market = load_ref(task.ref).with_volatility(task.volatility)
    return evaluate(market, task.kind, task.param_sets, task.segments, task.config,
                    flatten_minutes=task.flatten_minutes, periods=task.periods,
                    returns=task.returns)


def evaluate(market: MarketBars, kind: str, param_sets: Sequence[Mapping[str, Any]],
             segments: Sequence[tuple[int, int]], config: ExecutionConfig, *,
             flatten_minutes: int = 0, periods: int = DEFAULT_PERIODS,
             returns: bool = False) -> list[list[Summary]]:
    spec = get_spec(kind)
    strategies = [spec.bind(dict(params)) for params in param_sets]
    flatten = market.flatten(flatten_minutes)
    bounds = [(market.index(lo), market.index(hi)) for lo, hi in segments]
    out = []
    for strategy in strategies:
        targets = strategy.run(market.bars, strategy.initial_state(), market.sessions)
        out.append([_score(market, targets, flatten, lo, hi, config, periods, returns)
                    for lo, hi in bounds])
    return out


def _score(market: MarketBars, targets: npt.NDArray[np.int8],
           flatten: npt.NDArray[np.bool_] | None, lo: int, hi: int, config: ExecutionConfig,
           periods: int, returns: bool) -> Summary:
    if hi - lo < 1:
        return empty_summary(config, returns)
    result = simulate_targets(
        market.bars.slice(lo, hi), np.ascontiguousarray(targets[lo:hi]), config,
        days=np.ascontiguousarray(market.days[lo:hi]),
        flatten=None if flatten is None else flatten[lo:hi], record_equity=False)
    summary: Summary = result.metrics.as_dict()
    cash = float(config.cash)
    summary["profit"] = result.metrics.final_equity - cash
    summary["consistency"] = consistency(period_profits(result.daily_equity.tolist(), cash,
                                                        periods))
    summary["bars"] = hi - lo
    if returns:
        summary["daily_returns"] = daily_returns(result.daily_equity.tolist(), cash)
    return summary


def empty_summary(config: ExecutionConfig, returns: bool = False) -> Summary:
    """A segment without bars: nothing traded, nothing measured."""
    cash = float(config.cash)
    extra: Summary = {"daily_returns": []} if returns else {}
    return {**extra, "trades": 0, "winners": 0, "losers": 0, "net_pnl": 0.0, "gross_profit": 0.0,
            "gross_loss": 0.0, "final_equity": cash, "win_rate": 0.0, "profit_factor": None,
            "expectancy": 0.0, "sharpe": 0.0, "max_drawdown_pct": 0.0, "days": 0,
            "profit": 0.0, "consistency": None, "bars": 0}
