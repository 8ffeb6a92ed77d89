"""Sweeps (domain.md, "Research"): one strategy over a parameter grid, or one parameter set
over rolling windows (default 10 windows of 30 days); results ranked.

Ranking is by the tournament score (domain.research.tournament_score) unless the request
names a metric. In a grid sweep each combination's consistency is the share of profitable
sub-periods of its own run (10 by default, marked to market, see research.evaluation); in a
window sweep it is the window's own sub-periods, and the sweep's consistency is the share
of profitable windows.

Memory: a combination's run leaves its worker as one summary (a few dozen numbers), so a
1,000-combination sweep holds 1,000 summaries and never an equity curve or a trade list.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botwarden.data.calendar import NS_PER_DAY, NS_PER_MINUTE, to_datetime
from botwarden.domain.errors import DomainError
from botwarden.domain.research import consistency, tournament_score
from botwarden.research.evaluation import EvalTask, Summary, evaluate_task
from botwarden.research.executors import Executor, gather, split
from botwarden.research.market import DataRef
from botwarden.research.spec import RunSpec
from botwarden.research.strategies import get_spec

MAX_COMBINATIONS = 10_000
DEFAULT_WINDOWS, DEFAULT_WINDOW_DAYS = 10, 30
# name -> True when bigger is better
RANK_METRICS: Mapping[str, bool] = {
    "score": True, "sharpe": True, "net_pnl": True, "profit": True, "win_rate": True,
    "profit_factor": True, "expectancy": True, "consistency": True, "max_drawdown_pct": False,
}
SHOWN_METRICS = ("trades", "winners", "losers", "net_pnl", "gross_profit", "gross_loss", "profit",
                 "final_equity", "win_rate", "profit_factor", "expectancy", "sharpe",
                 "max_drawdown_pct", "days")
TASKS_PER_WORKER = 4  # enough chunks to balance the load and to show progress


def expand_grid(kind: str, base: Mapping[str, Any],
                grid: Mapping[str, Sequence[Any]]) -> tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]:
    """Every combination of the grid over the base parameters, validated by the strategy's
    schema: (valid parameter sets, skipped ones with the reason). An invalid combination
    (fast >= slow, say) is skipped rather than failing the sweep."""
    spec = get_spec(kind)
    unknown = set(grid) - set(spec.params_model.model_fields)
    if unknown:
        raise DomainError("INVALID_REQUEST",
                          f"{kind} has no parameter {', '.join(sorted(unknown))}",
                          "See GET /api/strategies for the parameter names.", status=422)
    names = list(grid)
    total = 1
    for name in names:
        total *= len(grid[name])
    if total > MAX_COMBINATIONS:
        raise DomainError("INVALID_REQUEST", f"the grid has {total} combinations",
                          f"Keep a sweep to {MAX_COMBINATIONS} combinations.", status=422)
    valid, skipped = [], []
    for values in itertools.product(*(grid[n] for n in names)):
        params = {**base, **dict(zip(names, values, strict=True))}
        try:
            valid.append(spec.bind(params).params.model_dump())
        except DomainError as exc:
            skipped.append({"params": params, "reason": exc.message})
    if not valid:
        raise DomainError("INVALID_REQUEST", "no combination of the grid is valid",
                          "See GET /api/strategies for each parameter's bounds.", status=422)
    return valid, skipped


def rolling_windows(start_ns: int, end_ns: int, count: int,
                    days: int) -> tuple[list[tuple[int, int]], str]:
    """`count` windows of `days` days, evenly spaced from the first bar to the last (they
    overlap when the data is shorter than count x days). With less data than one window,
    one window over everything, and a note saying so."""
    length = days * NS_PER_DAY
    span = end_ns - start_ns
    if span <= length:
        return [(start_ns, end_ns)], (f"only {span / NS_PER_DAY:.1f} days of data: one window "
                                      f"over all of it instead of {count} of {days} days")
    if count == 1:
        return [(end_ns - length, end_ns)], ""
    step = (span - length) // (count - 1) // NS_PER_MINUTE * NS_PER_MINUTE  # whole minutes
    return [(start_ns + k * step, start_ns + k * step + length) for k in range(count)], ""


def _row(params: Mapping[str, Any] | None, summary: Summary) -> dict[str, Any]:
    row: dict[str, Any] = {"metrics": {k: summary.get(k) for k in SHOWN_METRICS},
                           "consistency": summary.get("consistency"),
                           "score": tournament_score(summary, summary.get("consistency"))}
    if params is not None:
        row["params"] = dict(params)
    return row


def rank(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """Best first by `by` (a RANK_METRICS name); a missing value ranks last."""
    descending = RANK_METRICS[by]

    def value(row: dict[str, Any]) -> float:
        raw = row.get(by) if by in ("score", "consistency") else row["metrics"].get(by)
        if raw is None:
            return float("-inf")
        return float(raw) if descending else -float(raw)

    ordered = sorted(rows, key=value, reverse=True)
    for position, row in enumerate(ordered, start=1):
        row["rank"] = position
    return ordered


def run_grid(ref: DataRef, spec: RunSpec, combos: list[dict[str, Any]], executor: Executor, *,
             rank_by: str = "score", check: Callable[[], None] = lambda: None,
             progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    chunks = split(combos, executor.workers * TASKS_PER_WORKER)
    tasks = [EvalTask(ref, spec.kind, tuple(chunk), ((ref.start_ns, ref.end_ns),), spec.config,
                      spec.flatten_minutes) for chunk in chunks]
    results = gather(executor, evaluate_task, tasks, check=check, progress=progress,
                     weights=[len(c) for c in chunks])
    rows = [_row(params, per_segment[0])
            for chunk, result in zip(chunks, results, strict=True)
            for params, per_segment in zip(chunk, result, strict=True)]
    ranked = rank(rows, rank_by)
    best = ranked[0]
    return {
        "mode": "grid", "rank_by": rank_by, "combinations": len(rows), "results": ranked,
        "summary": {"combinations": len(rows), "best_params": best["params"],
                    "best_score": best["score"], "best_metrics": best["metrics"],
                    "profitable_share": consistency([r["metrics"]["profit"] for r in rows])},
    }


def run_windows(ref: DataRef, spec: RunSpec, windows: list[tuple[int, int]], executor: Executor,
                *, rank_by: str = "score", check: Callable[[], None] = lambda: None,
                progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    parts = split(windows, executor.workers * TASKS_PER_WORKER)
    tasks = [EvalTask(ref, spec.kind, (spec.params,), tuple(part), spec.config,
                      spec.flatten_minutes) for part in parts]
    results = gather(executor, evaluate_task, tasks, check=check, progress=progress,
                     weights=[len(p) for p in parts])
    rows = []
    for part, result in zip(parts, results, strict=True):
        for (lo, hi), summary in zip(part, result[0], strict=True):
            row = _row(None, summary)
            row["window"] = {"start": to_datetime(lo).isoformat(),
                             "end": to_datetime(hi).isoformat()}
            rows.append(row)
    for number, row in enumerate(rows, start=1):
        row["window"]["number"] = number
    profits = [r["metrics"]["profit"] for r in rows]
    share = consistency(profits)
    ranked = rank(rows, rank_by)
    return {
        "mode": "windows", "rank_by": rank_by, "windows": len(rows), "results": ranked,
        "summary": {"windows": len(rows), "consistency": share,
                    "profitable_windows": sum(1 for p in profits if p > 0),
                    "best_window": ranked[0]["window"], "best_score": ranked[0]["score"]},
    }
