"""SMA cross, stop-and-reverse: long after the fast SMA crosses above the slow one, short
after it crosses below; flat until the first cross.

A cross needs the fast SMA strictly below the slow one on the previous bar and strictly
above on this bar (or the mirror). The comparison is exact: with integer tick sums Sf, Ss
over windows f < s, fast < slow  <=>  Sf * s < Ss * f, all in int64.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from botwarden.research.strategies.base import StrategyParams, StrategySpec

# state layout
_SEEN, _TARGET, _PREV_SIGN, _SUM_FAST, _SUM_SLOW, _RING = 0, 1, 2, 3, 4, 5


class SmaCrossParams(StrategyParams):
    fast: int = Field(10, ge=1, le=1000, description="bars in the fast SMA")
    slow: int = Field(30, ge=2, le=5000, description="bars in the slow SMA")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


@njit(cache=True, nogil=True)
def sma_cross_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    fast = np.int64(params[0])
    slow = np.int64(params[1])
    seen = np.int64(state[_SEEN])
    target = np.int8(state[_TARGET])
    prev_sign = np.int64(state[_PREV_SIGN])
    sum_fast = np.int64(state[_SUM_FAST])
    sum_slow = np.int64(state[_SUM_SLOW])
    # ring positions: where the newest close goes, and the close leaving the fast window
    # (kept as wrapping counters: an integer division per bar would cost more than the rest)
    slot = seen % slow
    fast_out = (seen - fast) % slow
    for i in range(close.shape[0]):
        price = close[i]
        if seen >= slow:
            sum_slow -= np.int64(state[_RING + slot])
        if seen >= fast:
            sum_fast -= np.int64(state[_RING + fast_out])
        state[_RING + slot] = price
        sum_fast += price
        sum_slow += price
        seen += 1
        slot = slot + 1 if slot + 1 < slow else 0
        fast_out = fast_out + 1 if fast_out + 1 < slow else 0
        if seen >= slow:
            diff = sum_fast * slow - sum_slow * fast
            sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
            if seen > slow:
                if prev_sign < 0 and sign > 0:
                    target = np.int8(1)
                elif prev_sign > 0 and sign < 0:
                    target = np.int8(-1)
            prev_sign = sign
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target
    state[_PREV_SIGN] = prev_sign
    state[_SUM_FAST] = sum_fast
    state[_SUM_SLOW] = sum_slow


SPEC = StrategySpec(
    kind="sma_cross",
    title="SMA cross",
    description="Stop-and-reverse on crosses of a fast and a slow simple moving average.",
    params_model=SmaCrossParams,
    kernel=sma_cross_kernel,
    state_size=lambda p: _RING + p.slow,
    warmup=lambda p: p.slow + 1,
    uses_sessions=False,
)
