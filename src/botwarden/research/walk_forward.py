"""Walk-forward analysis (domain.md, "Research"): rolling train / test / step windows
(default 365 / 90 / 90 days, scaled down with less data: domain.research.plan_walk_forward).

- Fixed parameters (a bot's own, the default): each window scores the same parameters on
  its train days (in sample) and on the test days after them (out of sample). This is the
  evidence the SHADOW and CANARY gates read for that configuration.
- With a grid: each window picks the combination with the best tournament score on its
  train days and scores that one on its test days (walk-forward optimisation), measuring
  the selection process rather than one configuration.

Figures: consistency = share of windows whose out-of-sample equity grew; out-of-sample
Sharpe = the Sharpe ratio of the test windows' daily returns pooled (the stitched
out-of-sample record, defined even when each test window is only a day or two long);
in-sample Sharpe = the same over the train windows' daily returns; overfit ratio =
in-sample / out-of-sample Sharpe with the edge cases of domain.research.overfit_ratio
(out-of-sample Sharpe <= 0 gives None, and the gate fails).
The strategy runs over all the data once per parameter set, so a test window's strategy is
warmed up on everything before it; each train and test window gets a fresh account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from botwarden.data.calendar import NS_PER_DAY, to_datetime
from botwarden.domain.errors import DomainError
from botwarden.domain.gates import STANDARD
from botwarden.domain.metrics import sharpe_ratio
from botwarden.domain.research import (
    WalkForwardPlan,
    consistency,
    overfit_ratio,
    plan_walk_forward,
    tournament_score,
)
from botwarden.domain.stages import Stage
from botwarden.research.evaluation import EvalTask, Summary, evaluate_task
from botwarden.research.executors import Executor, gather, split
from botwarden.research.market import DataRef
from botwarden.research.spec import RunSpec
from botwarden.research.sweep import SHOWN_METRICS, TASKS_PER_WORKER


def plan(ref: DataRef, train: int, test: int, step: int) -> WalkForwardPlan:
    span = (ref.end_ns - ref.start_ns) / NS_PER_DAY
    planned = plan_walk_forward(span, train, test, step)
    if planned is None:
        raise DomainError("INSUFFICIENT_DATA",
                          f"{span:.1f} days of data are too few for a walk-forward analysis",
                          "Use a longer range of bars (a few weeks at least).", status=422)
    return planned


def windows_of(ref: DataRef, p: WalkForwardPlan) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """((train start, train end), (test start, test end)) per window, in ns."""
    day = NS_PER_DAY
    out = []
    for k in range(p.windows):
        train_lo = ref.start_ns + k * p.step_days * day
        train_hi = train_lo + p.train_days * day
        out.append(((train_lo, train_hi), (train_hi, min(train_hi + p.test_days * day,
                                                          ref.end_ns))))
    return out


def _part(bounds: tuple[int, int], summary: Summary) -> dict[str, Any]:
    return {"start": to_datetime(bounds[0]).isoformat(), "end": to_datetime(bounds[1]).isoformat(),
            "metrics": {k: summary.get(k) for k in SHOWN_METRICS},
            "score": tournament_score(summary, summary.get("consistency"))}


def run_walk_forward(ref: DataRef, spec: RunSpec, p: WalkForwardPlan, executor: Executor, *,
                     combos: list[dict[str, Any]] | None = None,
                     check: Callable[[], None] = lambda: None,
                     progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    windows = windows_of(ref, p)
    segments = tuple(seg for window in windows for seg in window)
    candidates = combos or [spec.params]
    chunks = split(candidates, executor.workers * TASKS_PER_WORKER)
    tasks = [EvalTask(ref, spec.kind, tuple(chunk), segments, spec.config, spec.flatten_minutes,
                      returns=True) for chunk in chunks]
    results = gather(executor, evaluate_task, tasks, check=check, progress=progress,
                     weights=[len(c) for c in chunks])
    per_candidate = [row for result in results for row in result]  # [candidate][segment]
    rows: list[dict[str, Any]] = []
    pooled_train: list[float] = []
    pooled_test: list[float] = []
    for k, (train, test) in enumerate(windows):
        scores = [tournament_score(c[2 * k], c[2 * k].get("consistency")) for c in per_candidate]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        chosen = per_candidate[best]
        rows.append({"number": k + 1, "params": candidates[best],
                     "train": _part(train, chosen[2 * k]), "test": _part(test, chosen[2 * k + 1])})
        pooled_train.extend(chosen[2 * k]["daily_returns"])
        pooled_test.extend(chosen[2 * k + 1]["daily_returns"])
    return summarise(rows, p, sharpe_ratio(pooled_train), sharpe_ratio(pooled_test),
                     optimised=combos is not None)


def summarise(rows: list[dict[str, Any]], p: WalkForwardPlan, in_sample: float,
              out_of_sample: float, *, optimised: bool) -> dict[str, Any]:
    share = consistency([r["test"]["metrics"]["profit"] for r in rows])
    ratio = overfit_ratio(in_sample, out_of_sample)
    metrics = {
        "consistency": share, "overfit_ratio": ratio, "in_sample_sharpe": in_sample,
        "out_of_sample_sharpe": out_of_sample, "windows": len(rows),
        "profitable_windows": sum(1 for r in rows if r["test"]["metrics"]["profit"] > 0),
        "out_of_sample_net_pnl": sum(r["test"]["metrics"]["net_pnl"] for r in rows),
        "out_of_sample_trades": sum(r["test"]["metrics"]["trades"] for r in rows),
    }
    shadow = STANDARD.stages[Stage.SHADOW]
    assert shadow.min_walk_forward_consistency is not None
    assert shadow.max_overfit_ratio is not None
    passed = (share is not None and share >= shadow.min_walk_forward_consistency
              and ratio is not None and ratio <= shadow.max_overfit_ratio)
    return {"plan": {**asdict(p), "scaled": p.scaled}, "optimised": optimised,
            "windows": rows, "metrics": metrics, "passed": passed}
