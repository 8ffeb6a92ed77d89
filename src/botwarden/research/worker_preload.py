"""Imported once by the process pool's fork server (research.executors): loads the research
stack, every compiled kernel and the exchange calendar, so that each worker forked from it
starts with them in memory instead of paying seconds of imports and cache loads."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from botwarden.data.calendar import get_calendar
from botwarden.research.engine import ExecutionConfig, simulate_targets
from botwarden.research.strategies import STRATEGIES
from botwarden.research.ticks import TickBars


def _warm_kernels() -> None:
    n = 8
    ticks = np.full(n, 100, dtype=np.int64)
    bars = TickBars(np.arange(n, dtype=np.int64) * 60_000_000_000, ticks, ticks + 1, ticks - 1,
                    ticks, np.ones(n), Decimal("0.25"))
    sessions = np.zeros(n, dtype=np.int64)
    for spec in STRATEGIES.values():
        strategy = spec.bind()
        targets = strategy.run(bars, strategy.initial_state(), sessions)
    config = ExecutionConfig(Decimal("0.25"), Decimal(5), Decimal("0.62"))
    simulate_targets(bars, targets, config, days=sessions, record_equity=False)


get_calendar()
_warm_kernels()
