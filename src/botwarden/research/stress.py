"""The stress test: the run's backtest again under harsher conditions, each scenario with its
pass rule (domain.research.STRESS_RULES; README "Research"). The test passes when every
scenario passes.

- costs_x2: commissions doubled.
- slippage_x3: three times the slippage, at least 3 ticks (a zero-slippage base would make
  the scenario vacuous).
- bootstrap: the base run's closed-trade PnLs resampled with replacement into `paths`
  sequences of the same length (seeded): the 5th percentile of the final PnL and the
  distribution of the max drawdown (of the closed-trade equity curve, in % of its peak,
  the starting cash being the first peak).
- volatility_x1.5 and volatility_x2: every bar's range scaled around its close on the tick
  grid (research.market.MarketBars.with_volatility): stops fill further away, gaps widen.
The drawdown limit is the bot's risk config `max_drawdown_pct`, else the TRIALS gate's 20%.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from botwarden.domain.bars import F64
from botwarden.domain.research import STRESS_RULES, StressFigures, stress_passes
from botwarden.research.lab import backtest
from botwarden.research.market import MarketBars
from botwarden.research.spec import RunSpec
from botwarden.research.sweep import SHOWN_METRICS

DEFAULT_PATHS = 1000
PATH_BATCH = 256  # resampled paths held in memory at once
MIN_BOOTSTRAP_TRADES = 2


def bootstrap(pnls: F64, cash: float, paths: int, seed: int) -> dict[str, Any] | None:
    """Final PnL and max drawdown over `paths` resampled trade sequences; None with fewer
    than two trades (nothing to resample)."""
    n = pnls.shape[0]
    if n < MIN_BOOTSTRAP_TRADES:
        return None
    rng = np.random.default_rng(seed)
    finals, drawdowns = [], []
    for first in range(0, paths, PATH_BATCH):
        count = min(PATH_BATCH, paths - first)
        curves = cash + np.cumsum(pnls[rng.integers(0, n, size=(count, n))], axis=1)
        peaks = np.maximum(np.maximum.accumulate(curves, axis=1), cash)
        drawdowns.append(np.max((peaks - curves) / peaks, axis=1) * 100.0)
        finals.append(curves[:, -1] - cash)
    final = np.concatenate(finals)
    drawdown = np.concatenate(drawdowns)
    return {
        "paths": paths, "seed": seed, "trades": n,
        "final_pnl": {"p5": float(np.percentile(final, 5)), "p50": float(np.median(final)),
                      "p95": float(np.percentile(final, 95))},
        "max_drawdown_pct": {"p5": float(np.percentile(drawdown, 5)),
                             "p50": float(np.median(drawdown)),
                             "p95": float(np.percentile(drawdown, 95)),
                             "max": float(drawdown.max())},
        "losing_paths_share": float(np.mean(final <= 0)),
    }


def _shown(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in SHOWN_METRICS if k != "profit"}


def run_stress(market: MarketBars, spec: RunSpec, *, paths: int = DEFAULT_PATHS,
               seed: int = 0) -> dict[str, Any]:
    base = backtest(market, spec)
    config = spec.config
    variants = {
        "costs_x2": (market, replace(spec, config=replace(
            config, commission_per_side=config.commission_per_side * 2))),
        "slippage_x3": (market, replace(spec, config=replace(
            config, slippage_ticks=max(3 * config.slippage_ticks, 3)))),
        "volatility_x1.5": (market.with_volatility(1.5), spec),
        "volatility_x2": (market.with_volatility(2.0), spec),
    }
    limit = spec.drawdown_limit_pct
    scenarios: list[dict[str, Any]] = []
    for name, (bars, variant) in variants.items():
        metrics = backtest(bars, variant).metrics.as_dict()
        figures = StressFigures(net_pnl=metrics["net_pnl"],
                                max_drawdown_pct=metrics["max_drawdown_pct"])
        scenarios.append({"name": name, "rule": STRESS_RULES[name],
                          "passed": stress_passes(name, figures, limit),
                          "metrics": _shown(metrics)})
    resampled = bootstrap(base.pnls, float(config.cash), paths, seed)
    figures = StressFigures() if resampled is None else StressFigures(
        final_pnl_p5=resampled["final_pnl"]["p5"],
        max_drawdown_p95=resampled["max_drawdown_pct"]["p95"])
    scenarios.insert(2, {"name": "bootstrap", "rule": STRESS_RULES["bootstrap"],
                         "passed": stress_passes("bootstrap", figures, limit),
                         "bootstrap": resampled,
                         "note": "" if resampled else "fewer than 2 closed trades to resample"})
    passed = all(s["passed"] for s in scenarios)
    base_metrics = base.metrics.as_dict()
    worst = max([base_metrics["max_drawdown_pct"]]
                + [s["metrics"]["max_drawdown_pct"] for s in scenarios if "metrics" in s]
                + ([resampled["max_drawdown_pct"]["p95"]] if resampled else []))
    return {
        "passed": passed, "drawdown_limit_pct": limit, "base": _shown(base_metrics),
        "scenarios": scenarios,
        "metrics": {**base_metrics, "worst_drawdown_pct": worst,
                    "scenarios_passed": sum(s["passed"] for s in scenarios),
                    "scenarios": len(scenarios),
                    "bootstrap_final_pnl_p5": figures.final_pnl_p5,
                    "bootstrap_max_drawdown_p95": figures.max_drawdown_p95},
    }
