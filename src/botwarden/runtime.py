"""Process-wide tuning for the long-lived processes (the API server and the workers)."""

from __future__ import annotations

import gc
from decimal import Decimal

import numpy as np
import structlog

log = structlog.get_logger(__name__)


def warm_strategy_kernels() -> None:
    """Load every strategy's compiled kernel (numba: from its on-disk cache, else compiled
    once) by running it over a few bars. A runner's first bar would otherwise do it, after
    the freeze: its some 60,000 objects (numba's types and options, the scipy and llvmlite
    modules it imports) then stayed young, and every full collection walked them, 20 ms
    on a runner's bar path each time (bench/runner_latency_bench.py)."""
    from botwarden.research.strategies import STRATEGIES, build_strategy
    from botwarden.research.ticks import TickBars

    n = 64
    ts = (np.arange(n, dtype=np.int64) * 60 + 1_750_000_000) * 1_000_000_000
    close = (20_000 + np.arange(n) % 7).astype(np.int64)
    bars = TickBars(ts, close, close + 2, close - 2, close + 1, np.ones(n), Decimal("0.25"))
    sessions = np.zeros(n, dtype=np.int64)
    for kind in STRATEGIES:
        try:
            strategy = build_strategy(kind)
            strategy.run(bars, strategy.initial_state(), sessions)
        except Exception:  # a speed-up only: the process starts anyway, the runner loads it
            log.warning("strategy_kernel_not_warmed", kind=kind, exc_info=True)


def freeze_startup_heap() -> None:
    """Put everything alive after start-up (the modules, the strategy kernels, numba's and
    pandas' internals, the settings) in the collector's permanent generation. A full
    collection then walks only what the process made since: on a runner's bar path it
    otherwise stopped the thread for tens of milliseconds, now and then, walking objects
    that live for the whole process."""
    warm_strategy_kernels()
    gc.collect()
    gc.freeze()
