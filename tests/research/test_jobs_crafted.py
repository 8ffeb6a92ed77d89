"""Research kinds on crafted bars whose outcome is known: matrix consistency, walk-forward
consistency and overfit ratio, stress pass and fail, sweep ranking and windows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from botwarden.data.calendar import NS_PER_DAY, to_ns
from botwarden.domain.metrics import sharpe_ratio
from botwarden.domain.research import overfit_ratio, tournament_score
from botwarden.research import matrix, stress, sweep, walk_forward
from botwarden.research.evaluation import EvalTask, evaluate_task
from botwarden.research.executors import SerialExecutor
from botwarden.research.market import open_series
from tests.research.jobs_support import CRAFTED, crafted_spec, sawtooth, trend_then_flat

SERIAL = SerialExecutor()


def _ns(text: str) -> int:
    return to_ns(datetime.fromisoformat(text))


@pytest.fixture(scope="module")
def trend_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    data_dir = tmp_path_factory.mktemp("trend")
    flat_from = trend_then_flat(data_dir, days=100, flat_days=31)
    return data_dir, flat_from


@pytest.fixture(scope="module")
def saw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("saw")
    sawtooth(data_dir, days=8)
    return data_dir


def test_matrix_consistency_is_the_share_of_profitable_cells(trend_dir: tuple[Path, int]) -> None:
    data_dir, _ = trend_dir
    spec = crafted_spec()
    minutes, _, _ = open_series(data_dir, "MES", "1m", dataset=CRAFTED)
    cells = matrix.plan_cells(data_dir, spec, minutes)
    assert [(c.timeframe, c.horizon_days) for c in cells] == [
        ("1m", 30), ("1m", 90), ("5m", 30), ("5m", 90), ("15m", 30), ("15m", 90)]
    result = matrix.run_matrix(cells, spec, SERIAL)
    by_cell = {(c["timeframe"], c["horizon_days"]): c for c in result["cells"]}
    # the last 30 days are flat: nothing breaks out, nothing is traded
    for timeframe in matrix.TIMEFRAMES:
        flat, trend = by_cell[(timeframe, 30)], by_cell[(timeframe, 90)]
        assert flat["metrics"]["profit"] == 0 and not flat["profitable"]
        assert trend["metrics"]["profit"] > 0 and trend["profitable"]
    assert result["consistency"] == 0.5
    assert result["summary"]["profitable_cells"] == 3


def test_walk_forward_consistency_and_overfit_ratio(trend_dir: tuple[Path, int]) -> None:
    data_dir, flat_from = trend_dir
    spec = crafted_spec(timeframe="5m")
    _, _, ref = open_series(data_dir, "MES", "5m", dataset=CRAFTED)
    plan = walk_forward.plan(ref, train=20, test=10, step=10)
    assert not plan.scaled and plan.windows >= 6
    result = walk_forward.run_walk_forward(ref, spec, plan, SERIAL)
    rows = result["windows"]
    assert len(rows) == plan.windows and not result["optimised"]
    day = NS_PER_DAY
    for k, row in enumerate(rows):
        test_start = ref.start_ns + (k * 10 + 20) * day
        profit = row["test"]["metrics"]["profit"]
        if test_start + 10 * day <= flat_from:  # all in the rise
            assert profit > 0, row
        if test_start >= flat_from:  # all flat: the standing long is bought, and no more
            assert profit == pytest.approx(-float(spec.config.commission_per_side)), row
    profitable = sum(r["test"]["metrics"]["profit"] > 0 for r in rows)
    metrics = result["metrics"]
    assert 0 < profitable < len(rows)
    assert metrics["consistency"] == profitable / len(rows)
    # the pooled daily returns of the windows, recomputed from each window on its own
    pooled: dict[str, list[float]] = {"train": [], "test": []}
    for row in rows:
        for part in ("train", "test"):
            bounds = (int(_ns(row[part]["start"])), int(_ns(row[part]["end"])))
            task = EvalTask(ref, spec.kind, (spec.params,), ((ref.start_ns, bounds[1]),
                                                             bounds), spec.config, returns=True)
            pooled[part].extend(evaluate_task(task)[0][1]["daily_returns"])
    in_sample, out_of_sample = sharpe_ratio(pooled["train"]), sharpe_ratio(pooled["test"])
    assert metrics["in_sample_sharpe"] == pytest.approx(in_sample)
    assert metrics["out_of_sample_sharpe"] == pytest.approx(out_of_sample)
    assert out_of_sample > 0 and in_sample > 0
    assert metrics["overfit_ratio"] == pytest.approx(overfit_ratio(in_sample, out_of_sample))


def test_walk_forward_with_a_grid_picks_each_windows_best_on_train(saw_dir: Path) -> None:
    spec = crafted_spec()
    _, _, ref = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    combos, _ = sweep.expand_grid(spec.kind, spec.params, {"period": [2, 5, 12, 40]})
    plan = walk_forward.plan(ref, train=365, test=90, step=90)
    assert plan.scaled and plan.windows == 3 and "scaled" in plan.note
    result = walk_forward.run_walk_forward(ref, spec, plan, SERIAL, combos=combos)
    assert result["optimised"]
    for k, row in enumerate(result["windows"]):
        segment = (walk_forward.windows_of(ref, plan)[k][0],)
        scores = []
        for params in combos:
            summary = sweep.evaluate_task(sweep.EvalTask(ref, spec.kind, (params,), segment,
                                                         spec.config))[0][0]
            scores.append(tournament_score(summary, summary["consistency"]))
        assert row["params"] == combos[int(np.argmax(scores))]


def test_stress_passes_on_a_profitable_sawtooth_and_fails_when_costs_eat_it(
        saw_dir: Path) -> None:
    market, _, _ = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    cheap = stress.run_stress(market, crafted_spec(), paths=300, seed=3)
    assert cheap["passed"], cheap["scenarios"]
    assert [s["name"] for s in cheap["scenarios"]] == [
        "costs_x2", "slippage_x3", "bootstrap", "volatility_x1.5", "volatility_x2"]
    assert cheap["metrics"]["scenarios_passed"] == 5
    dear = stress.run_stress(market, crafted_spec(commission="20"), paths=300, seed=3)
    verdicts = {s["name"]: s["passed"] for s in dear["scenarios"]}
    assert not dear["passed"] and not verdicts["costs_x2"] and not verdicts["bootstrap"]
    assert dear["metrics"]["net_pnl"] < 0


def test_bootstrap_is_seeded_and_measures_the_resampled_paths() -> None:
    pnls = np.array([100.0, -40.0, 60.0, -20.0, 80.0])
    first = stress.bootstrap(pnls, 10_000.0, paths=500, seed=1)
    assert first == stress.bootstrap(pnls, 10_000.0, paths=500, seed=1)
    assert first != stress.bootstrap(pnls, 10_000.0, paths=500, seed=2)
    assert first is not None
    assert first["final_pnl"]["p5"] <= first["final_pnl"]["p50"] <= first["final_pnl"]["p95"]
    assert 0 <= first["max_drawdown_pct"]["p50"] <= first["max_drawdown_pct"]["max"]
    assert stress.bootstrap(np.array([5.0]), 10_000.0, paths=10, seed=0) is None
    only_gains = stress.bootstrap(np.array([5.0, 7.0]), 10_000.0, paths=50, seed=0)
    assert only_gains is not None and only_gains["max_drawdown_pct"]["max"] == 0


def test_volatility_shock_scales_ranges_around_the_close_on_the_grid(saw_dir: Path) -> None:
    market, _, _ = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    shocked = market.with_volatility(2.0).bars
    bars = market.bars
    assert np.array_equal(shocked.close, bars.close)
    assert np.array_equal(shocked.high - shocked.close, 2 * (bars.high - bars.close))
    assert np.array_equal(shocked.close - shocked.low, 2 * (bars.close - bars.low))
    assert np.all(shocked.high >= np.maximum(shocked.open, shocked.close))
    assert np.all(shocked.low <= np.minimum(shocked.open, shocked.close))


def test_grid_sweep_is_ranked_best_first(saw_dir: Path) -> None:
    spec = crafted_spec()
    _, _, ref = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    combos, skipped = sweep.expand_grid(spec.kind, spec.params,
                                        {"period": [1, 2, 3, 5, 8, 13, 21, 34, 0]})
    assert len(combos) == 8 and skipped[0]["params"] == {"period": 0}
    result = sweep.run_grid(ref, spec, combos, SERIAL)
    scores = [r["score"] for r in result["results"]]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) > 1
    assert [r["rank"] for r in result["results"]] == list(range(1, 9))
    by_drawdown = sweep.run_grid(ref, spec, combos, SERIAL, rank_by="max_drawdown_pct")
    drawdowns = [r["metrics"]["max_drawdown_pct"] for r in by_drawdown["results"]]
    assert drawdowns == sorted(drawdowns)
    assert result["summary"]["best_params"] == result["results"][0]["params"]


def test_rolling_windows_cover_the_range_and_rank(saw_dir: Path) -> None:
    spec = crafted_spec()
    _, _, ref = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    bounds, note = sweep.rolling_windows(ref.start_ns, ref.end_ns, 4, 2)
    assert note == "" and len(bounds) == 4
    assert bounds[0][0] == ref.start_ns and bounds[-1][1] <= ref.end_ns
    assert all(hi - lo == 2 * NS_PER_DAY for lo, hi in bounds)
    result = sweep.run_windows(ref, spec, bounds, SERIAL)
    profits = [r["metrics"]["profit"] for r in result["results"]]
    assert result["summary"]["consistency"] == sum(p > 0 for p in profits) / 4
    one, why = sweep.rolling_windows(ref.start_ns, ref.end_ns, 10, 30)
    assert one == [(ref.start_ns, ref.end_ns)] and "one window" in why


def test_a_run_refuses_bars_that_changed_after_it_pinned_them(saw_dir: Path) -> None:
    from botwarden.domain.errors import DomainError
    from botwarden.research import market as market_module

    _, _, ref = open_series(saw_dir, "MES", "1m", dataset=CRAFTED)
    forged = replace(ref, data_hash="0" * 64)
    with pytest.raises(DomainError) as refused:
        market_module.load_ref(forged)
    assert refused.value.code == "DATA_CHANGED"
