"""The research matrix (domain.md, "Research"): one strategy at timeframes 1m, 5m and 15m
over the last 30 and 90 days = 6 cells; consistency = share of profitable cells.

Each cell is its own backtest: the cell's bars are resampled from the same 1-minute series
(bar_store), counted back from the series' last bar, and the strategy starts from its
initial state at the cell's first bar. A cell is profitable when its equity grew (closed
trades plus an open position marked to the last close). With less data than a horizon,
the cell covers what there is and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botwarden.data.calendar import NS_PER_DAY, to_datetime
from botwarden.data.provenance import Provenance
from botwarden.domain.research import consistency
from botwarden.research.evaluation import EvalTask, evaluate_task
from botwarden.research.executors import Executor, gather
from botwarden.research.market import DataRef, MarketBars, open_series
from botwarden.research.spec import RunSpec
from botwarden.research.sweep import SHOWN_METRICS

TIMEFRAMES = ("1m", "5m", "15m")
HORIZONS_DAYS = (30, 90)


@dataclass(frozen=True, slots=True)
class Cell:
    timeframe: str
    horizon_days: int
    ref: DataRef
    note: str


def plan_cells(data_dir: Path, spec: RunSpec,
               minutes: MarketBars) -> list[Cell]:
    """The six cells, counted back from the last bar of `minutes` (the run's 1m series)."""
    end = minutes.end_ns
    cells = []
    for timeframe in TIMEFRAMES:
        for horizon in HORIZONS_DAYS:
            start = max(minutes.start_ns, end - horizon * NS_PER_DAY)
            _, _, ref = open_series(data_dir, spec.symbol, timeframe, start, end,
                                    dataset=spec.dataset)
            covered = (end - start) / NS_PER_DAY
            note = "" if covered >= horizon else f"only {covered:.1f} of {horizon} days of data"
            cells.append(Cell(timeframe, horizon, ref, note))
    return cells


def run_matrix(cells: list[Cell], spec: RunSpec, executor: Executor, *,
               check: Callable[[], None] = lambda: None,
               progress: Callable[[float], None] | None = None) -> dict[str, Any]:
    tasks = [EvalTask(c.ref, spec.kind, (spec.params,), ((c.ref.start_ns, c.ref.end_ns),),
                      spec.config, spec.flatten_minutes) for c in cells]
    results = gather(executor, evaluate_task, tasks, check=check, progress=progress)
    rows = []
    for cell, result in zip(cells, results, strict=True):
        summary = result[0][0]
        rows.append({
            "timeframe": cell.timeframe, "horizon_days": cell.horizon_days,
            "range_start": to_datetime(cell.ref.start_ns).isoformat(),
            "range_end": to_datetime(cell.ref.end_ns - 1).isoformat(),
            "bars": summary["bars"], "data_hash": cell.ref.data_hash,
            "metrics": {k: summary.get(k) for k in SHOWN_METRICS},
            "profitable": summary["profit"] > 0, "note": cell.note,
        })
    share = consistency([row["metrics"]["profit"] for row in rows])
    sharpes = [row["metrics"]["sharpe"] for row in rows]
    return {
        "cells": rows,
        "consistency": share,
        "summary": {"cells": len(rows), "profitable_cells": sum(r["profitable"] for r in rows),
                    "consistency": share, "mean_sharpe": sum(sharpes) / len(sharpes),
                    "total_profit": sum(r["metrics"]["profit"] for r in rows)},
    }


def provenance_of(minutes_provenance: Provenance, cells: list[Cell]) -> dict[str, Any]:
    """The matrix's own provenance: the 1-minute series every cell was resampled from,
    over the longest horizon (its hash is that cell's)."""
    source = max((c for c in cells if c.timeframe == TIMEFRAMES[0]),
                 key=lambda c: c.horizon_days)
    return {"provider": minutes_provenance.provider, "dataset": minutes_provenance.dataset,
            "range_start": to_datetime(source.ref.start_ns),
            "range_end": to_datetime(source.ref.end_ns - 1), "data_hash": source.ref.data_hash}
