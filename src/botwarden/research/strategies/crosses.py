"""Moving-average crosses, stop-and-reverse: long after the fast average crosses above the
slow one, short after it crosses below; flat until the first cross. A cross needs the fast
average strictly below the slow one on the previous bar and strictly above on this bar (or
the mirror), decided in exact integer arithmetic so float noise never breaks a tie:

- SMA: with integer tick sums Sf, Ss over windows f < s, fast < slow <=> Sf * s < Ss * f.
- EMA: each EMA is an int64 in fixed point, units of 2**-20 tick, seeded with the first
  close and updated with the exact integer rule

      e += round_half_up(2 * (close * 2**20 - e) / (n + 1))

  so comparing the two EMAs compares integers: a tie is a real tie of the fixed-point
  values, and every machine computes the same bits. The fixed-point EMA stays within
  (n + 1) * 2**-22 tick of the real-valued one (each step rounds by at most half a unit
  and the recursion damps past errors).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from botwarden.research.strategies.base import StrategyParams, StrategySpec

EMA_SCALE = 1 << 20

# state layouts
_SEEN, _TARGET, _PREV_SIGN = 0, 1, 2
_SUM_FAST, _SUM_SLOW, _RING = 3, 4, 5
_EMA_FAST, _EMA_SLOW = 3, 4
_EMA_STATE_SIZE = 5


class _CrossParams(StrategyParams):
    fast: int
    slow: int

    @model_validator(mode="after")
    def _fast_below_slow(self) -> _CrossParams:
        if self.fast >= self.slow:
            raise ValueError("fast must be shorter than slow")
        return self


class SmaCrossParams(_CrossParams):
    fast: int = Field(10, ge=1, le=1000, description="bars in the fast SMA")
    slow: int = Field(30, ge=2, le=5000, description="bars in the slow SMA")


@njit(cache=True, nogil=True, inline="always")
def _cross(seen, slow, prev_sign, diff, target):  # type: ignore[no-untyped-def]
    """Stop-and-reverse on a strict cross of `diff` (fast minus slow, exact) once both
    averages exist: returns the new (previous sign, target)."""
    if seen < slow:
        return prev_sign, target
    sign = 1 if diff > 0 else (-1 if diff < 0 else 0)
    if seen > slow:
        if prev_sign < 0 and sign > 0:
            target = np.int8(1)
        elif prev_sign > 0 and sign < 0:
            target = np.int8(-1)
    return sign, target


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
    # `| int`: reset to a plain 0 below (numba types both as int64)
    slot: np.int64 | int = seen % slow
    fast_out: np.int64 | int = (seen - fast) % slow
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
        prev_sign, target = _cross(seen, slow, prev_sign, sum_fast * slow - sum_slow * fast,
                                   target)
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target
    state[_PREV_SIGN] = prev_sign
    state[_SUM_FAST] = sum_fast
    state[_SUM_SLOW] = sum_slow


SMA_CROSS = StrategySpec(
    kind="sma_cross",
    title="SMA cross",
    description="Stop-and-reverse on crosses of a fast and a slow simple moving average.",
    params_model=SmaCrossParams,
    kernel=sma_cross_kernel,
    state_size=lambda p: _RING + p.slow,
    warmup=lambda p: p.slow + 1,
    uses_sessions=False,
)


class EmaCrossParams(_CrossParams):
    fast: int = Field(12, ge=1, le=1000, description="span of the fast EMA in bars")
    slow: int = Field(26, ge=2, le=5000, description="span of the slow EMA in bars")


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
        prev_sign, target = _cross(seen, slow, prev_sign, ema_fast - ema_slow, target)
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target
    state[_PREV_SIGN] = prev_sign
    state[_EMA_FAST] = ema_fast
    state[_EMA_SLOW] = ema_slow


EMA_CROSS = StrategySpec(
    kind="ema_cross",
    title="EMA cross",
    description="Stop-and-reverse on crosses of a fast and a slow exponential moving average.",
    params_model=EmaCrossParams,
    kernel=ema_cross_kernel,
    state_size=lambda p: _EMA_STATE_SIZE,
    warmup=lambda p: p.slow + 1,
    uses_sessions=False,
)
