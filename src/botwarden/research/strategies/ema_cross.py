"""EMA cross, stop-and-reverse: long after the fast EMA crosses above the slow one, short
after it crosses below; flat until the first cross (decisions start after `slow` bars).

Tie-safe by construction: each EMA is an int64 in fixed point, units of 2**-20 tick,
seeded with the first close and updated with the exact integer rule

    e += round_half_up(2 * (close * 2**20 - e) / (n + 1))

so a comparison of the two EMAs is a comparison of integers: a tie is a real tie of the
fixed-point values, never float noise, and every machine computes the same bits. The
fixed-point EMA stays within about n * 2**-21 tick of the real-valued one.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from botwarden.research.strategies.base import StrategyParams, StrategySpec

EMA_SCALE = 1 << 20
_SEEN, _TARGET, _PREV_SIGN, _EMA_FAST, _EMA_SLOW = 0, 1, 2, 3, 4
_STATE_SIZE = 5


class EmaCrossParams(StrategyParams):
    fast: int = Field(12, ge=1, le=1000, description="span of the fast EMA in bars")
    slow: int = Field(26, ge=2, le=5000, description="span of the slow EMA in bars")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


@njit(cache=True, nogil=True, inline="always")
def _ema_step(ema, scaled_price, span):  # type: ignore[no-untyped-def]
    # floor((4d + n + 1) / (2n + 2)) == round-half-up of 2d / (n + 1)
    return ema + (4 * (scaled_price - ema) + span + 1) // (2 * span + 2)


@njit(cache=True, nogil=True)
def ema_cross_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    fast = np.int64(params[0])
    slow = np.int64(params[1])
    seen = np.int64(state[_SEEN])
    target = np.int8(state[_TARGET])
    prev_sign = np.int64(state[_PREV_SIGN])
    ema_fast = np.int64(state[_EMA_FAST])
    ema_slow = np.int64(state[_EMA_SLOW])
    for i in range(close.shape[0]):
        scaled = close[i] * EMA_SCALE
        if seen == 0:
            ema_fast = scaled
            ema_slow = scaled
        else:
            ema_fast = _ema_step(ema_fast, scaled, fast)
            ema_slow = _ema_step(ema_slow, scaled, slow)
        seen += 1
        if seen >= slow:
            sign = 1 if ema_fast > ema_slow else (-1 if ema_fast < ema_slow else 0)
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
    state[_EMA_FAST] = ema_fast
    state[_EMA_SLOW] = ema_slow


SPEC = StrategySpec(
    kind="ema_cross",
    title="EMA cross",
    description="Stop-and-reverse on crosses of a fast and a slow exponential moving average.",
    params_model=EmaCrossParams,
    kernel=ema_cross_kernel,
    state_size=lambda p: _STATE_SIZE,
    warmup=lambda p: p.slow + 1,
    uses_sessions=False,
)
