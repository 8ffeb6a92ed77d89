"""The long-lived processes move their start-up heap out of the collector's way."""

from __future__ import annotations

import gc
import subprocess
import sys

from botwarden.runtime import freeze_startup_heap


def test_the_startup_heap_is_frozen() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


# In a fresh interpreter (this one may have run the kernels already): after the freeze, a
# runner's first pass of its strategy leaves next to nothing young for a full collection.
_FIRST_BAR_AFTER_FREEZE = """
import gc, sys
from decimal import Decimal
import numpy as np
from botwarden.research.strategies import build_strategy
from botwarden.research.ticks import TickBars
from botwarden.runtime import freeze_startup_heap

if sys.argv[1] == "warm":
    freeze_startup_heap()
else:
    gc.collect()
    gc.freeze()
close = np.array([20000, 20001, 20000], dtype=np.int64)
bars = TickBars(np.array([1, 2, 3], dtype=np.int64) * 60_000_000_000, close, close + 1,
                close - 1, close, np.ones(3), Decimal("0.25"))
strategy = build_strategy("sma_cross", {"fast": 1, "slow": 2})
strategy.run(bars, strategy.initial_state(), np.zeros(3, dtype=np.int64))
gc.collect()
print(len(gc.get_objects()))
"""


def _young_after_first_bar(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", _FIRST_BAR_AFTER_FREEZE, mode],
                          capture_output=True, text=True, timeout=300, check=True)
    return int(done.stdout.split()[-1])


def test_strategy_kernels_are_loaded_before_the_freeze() -> None:
    warm, cold = _young_after_first_bar("warm"), _young_after_first_bar("cold")
    # Measured: 4 objects against some 60,000 with the kernel loaded after the freeze.
    assert warm < 10_000 < cold, (warm, cold)
