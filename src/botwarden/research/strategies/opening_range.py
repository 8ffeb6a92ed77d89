"""Opening-range breakout: the first `range_bars` bars of each session set a high and a
low; afterwards a close above the high goes long, a close below the low goes short (and
reverses). Flat at the start of every session. Session ids come from the calendar."""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from botwarden.research.strategies.base import StrategyParams, StrategySpec

_STARTED, _TARGET, _SESSION, _IN_SESSION, _RANGE_HIGH, _RANGE_LOW = 0, 1, 2, 3, 4, 5
_STATE_SIZE = 6


class OpeningRangeParams(StrategyParams):
    range_bars: int = Field(15, ge=1, le=600, description="bars that form the opening range")


@njit(cache=True, nogil=True)
def opening_range_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    range_bars = np.int64(params[0])
    started = state[_STARTED] != 0
    target = np.int8(state[_TARGET])
    current = np.int64(state[_SESSION])
    # `| int`: reset to a plain 0 below (numba types both as int64)
    in_session: np.int64 | int = np.int64(state[_IN_SESSION])
    range_high = np.int64(state[_RANGE_HIGH])
    range_low = np.int64(state[_RANGE_LOW])
    for i in range(close.shape[0]):
        if not started or session[i] != current:
            started = True
            current = session[i]
            in_session = 0
            target = np.int8(0)
        in_session += 1
        if in_session == 1:
            range_high = high[i]
            range_low = low[i]
        elif in_session <= range_bars:
            range_high = max(range_high, high[i])
            range_low = min(range_low, low[i])
        elif close[i] > range_high:
            target = np.int8(1)
        elif close[i] < range_low:
            target = np.int8(-1)
        out[i] = target
    state[_STARTED] = 1.0 if started else 0.0
    state[_TARGET] = target
    state[_SESSION] = current
    state[_IN_SESSION] = in_session
    state[_RANGE_HIGH] = range_high
    state[_RANGE_LOW] = range_low


SPEC = StrategySpec(
    kind="opening_range",
    title="Opening-range breakout",
    description="Trade the break of each session's opening range, stop-and-reverse.",
    params_model=OpeningRangeParams,
    kernel=opening_range_kernel,
    state_size=lambda p: _STATE_SIZE,
    warmup=lambda p: p.range_bars + 1,
    uses_sessions=True,
)
