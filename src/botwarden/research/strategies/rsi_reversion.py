"""RSI mean reversion: long while Wilder's RSI is below `lower`, short while above `upper`;
a long is closed once RSI is back at or above 50, a short at or below 50.

RSI = 100 * G / (G + L) with Wilder-smoothed average gain G and loss L of close-to-close
changes in ticks. Thresholds are compared without dividing (100 G < lower (G + L)), and
when G + L = 0 (no movement) the target is left unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field, model_validator

from botwarden.research.strategies.base import StrategyParams, StrategySpec

_SEEN, _TARGET, _PREV_CLOSE, _AVG_GAIN, _AVG_LOSS = 0, 1, 2, 3, 4
_STATE_SIZE = 5


class RsiReversionParams(StrategyParams):
    period: int = Field(14, ge=2, le=200, description="RSI look-back in bars")
    lower: int = Field(30, ge=1, le=49, description="go long below this RSI")
    upper: int = Field(70, ge=51, le=99, description="go short above this RSI")

    @model_validator(mode="after")
    def _ordered(self) -> RsiReversionParams:
        if self.lower >= self.upper:
            raise ValueError("lower must be below upper")
        return self


@njit(cache=True, nogil=True)
def rsi_reversion_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    period = np.int64(params[0])
    lower = params[1]
    upper = params[2]
    seen = np.int64(state[_SEEN])
    target = np.int8(state[_TARGET])
    prev_close = np.int64(state[_PREV_CLOSE])
    avg_gain = state[_AVG_GAIN]
    avg_loss = state[_AVG_LOSS]
    for i in range(close.shape[0]):
        price = close[i]
        if seen > 0:
            change = price - prev_close
            gain = float(change) if change > 0 else 0.0
            loss = float(-change) if change < 0 else 0.0
            if seen <= period:  # the first `period` changes seed a simple average
                avg_gain += gain
                avg_loss += loss
                if seen == period:
                    avg_gain /= period
                    avg_loss /= period
            else:
                avg_gain = (avg_gain * (period - 1) + gain) / period
                avg_loss = (avg_loss * (period - 1) + loss) / period
            total = avg_gain + avg_loss
            if seen >= period and total > 0:
                if 100.0 * avg_gain < lower * total:
                    target = np.int8(1)
                elif 100.0 * avg_gain > upper * total:
                    target = np.int8(-1)
                elif target == 1 and avg_gain >= avg_loss or target == -1 and avg_gain <= avg_loss:
                    target = np.int8(0)
        prev_close = price
        seen += 1
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target
    state[_PREV_CLOSE] = prev_close
    state[_AVG_GAIN] = avg_gain
    state[_AVG_LOSS] = avg_loss


SPEC = StrategySpec(
    kind="rsi_reversion",
    title="RSI mean reversion",
    description="Fade RSI extremes; exit when RSI returns to 50.",
    params_model=RsiReversionParams,
    kernel=rsi_reversion_kernel,
    state_size=lambda p: _STATE_SIZE,
    warmup=lambda p: p.period + 1,
    uses_sessions=False,
)
