"""Many backtests of one strategy kind on the same bars: the core that sweeps, matrices,
walk-forward and evolution stand on.

Each run keeps only its metrics (no equity curve, no trade list), so memory stays at a few
arrays per worker thread whatever the number of parameter sets. The kernels release the
GIL (`nogil=True`), so threads run them in parallel without copying the bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from botwarden.domain.bars import I64
from botwarden.domain.metrics import Metrics
from botwarden.research.engine import ExecutionConfig, simulate_targets
from botwarden.research.sessions import utc_days
from botwarden.research.strategies import get_spec
from botwarden.research.ticks import TickBars


def run_many(
    bars: TickBars,
    kind: str,
    param_sets: Sequence[Mapping[str, Any]],
    config: ExecutionConfig,
    *,
    sessions: I64,
    days: I64 | None = None,
    flatten: npt.NDArray[np.bool_] | None = None,
    threads: int = 2,
) -> list[Metrics]:
    """Metrics of `kind` under each parameter set, in the order given. `sessions`, `days`
    and `flatten` as for `run_backtest` (days default to UTC dates)."""
    spec = get_spec(kind)
    trading_days = utc_days(bars.ts) if days is None else days
    strategies = [spec.bind(dict(params)) for params in param_sets]  # validate all up front

    def one(index: int) -> Metrics:
        strategy = strategies[index]
        targets = strategy.run(bars, strategy.initial_state(), sessions)
        result = simulate_targets(bars, targets, config, days=trading_days, flatten=flatten,
                                  record_equity=False)
        return result.metrics

    if threads <= 1:
        return [one(i) for i in range(len(strategies))]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(len(strategies))))
