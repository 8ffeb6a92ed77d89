"""Donchian breakout, stop-and-reverse: long when the close breaks above the highest high
of the previous `period` bars, short when it breaks below their lowest low (exact ticks)."""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from botwarden.research.strategies.base import StrategyParams, StrategySpec

# state: bars seen, target, then a ring of highs and a ring of lows of `period` slots each
_SEEN, _TARGET, _RING = 0, 1, 2


class DonchianParams(StrategyParams):
    period: int = Field(20, ge=1, le=1000, description="channel look-back in bars")


@njit(cache=True, nogil=True)
def donchian_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    period = np.int64(params[0])
    lows = _RING + period
    seen = np.int64(state[_SEEN])
    target = np.int8(state[_TARGET])
    for i in range(close.shape[0]):
        if seen >= period:
            highest = state[_RING]
            lowest = state[lows]
            for k in range(1, period):
                highest = max(highest, state[_RING + k])
                lowest = min(lowest, state[lows + k])
            if close[i] > highest:
                target = np.int8(1)
            elif close[i] < lowest:
                target = np.int8(-1)
        slot = seen % period
        state[_RING + slot] = high[i]
        state[lows + slot] = low[i]
        seen += 1
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target


SPEC = StrategySpec(
    kind="donchian_breakout",
    title="Donchian breakout",
    description="Stop-and-reverse on breaks of the previous N bars' high/low channel.",
    params_model=DonchianParams,
    kernel=donchian_kernel,
    state_size=lambda p: _RING + 2 * p.period,
    warmup=lambda p: p.period + 1,
    uses_sessions=False,
)
