"""Session VWAP reversion: long when the close is more than `band_ticks` below the
session's VWAP, short when more than `band_ticks` above; a long is closed once the close
is back at or above VWAP, a short at or below. Flat at the start of every session.

VWAP uses the typical price (H + L + C) / 3 weighted by volume since the session's first
bar. Comparisons are multiplied out (3 C V - sum((H+L+C) v) against 3 band V) so no
division rounds; with whole-number volumes every term is an exact integer in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from pydantic import Field

from botwarden.research.strategies.base import StrategyParams, StrategySpec

_SEEN, _TARGET, _SESSION, _SUM_PV, _SUM_V = 0, 1, 2, 3, 4
_STATE_SIZE = 5


class VwapReversionParams(StrategyParams):
    band_ticks: int = Field(8, ge=1, le=10000, description="distance from VWAP to enter, ticks")


@njit(cache=True, nogil=True)
def vwap_reversion_kernel(state, params, open_, high, low, close, volume, session, out):  # type: ignore[no-untyped-def]
    band = params[0]
    seen = np.int64(state[_SEEN])
    target = np.int8(state[_TARGET])
    current = np.int64(state[_SESSION])
    sum_pv = state[_SUM_PV]
    sum_v = state[_SUM_V]
    for i in range(close.shape[0]):
        if seen == 0 or session[i] != current:
            current = session[i]
            sum_pv = 0.0
            sum_v = 0.0
            target = np.int8(0)
        sum_pv += float(high[i] + low[i] + close[i]) * volume[i]
        sum_v += volume[i]
        if sum_v > 0:
            deviation = 3.0 * close[i] * sum_v - sum_pv  # 3 V (C - VWAP)
            reach = 3.0 * band * sum_v
            if deviation < -reach:
                target = np.int8(1)
            elif deviation > reach:
                target = np.int8(-1)
            elif target == 1 and deviation >= 0 or target == -1 and deviation <= 0:
                target = np.int8(0)
        seen += 1
        out[i] = target
    state[_SEEN] = seen
    state[_TARGET] = target
    state[_SESSION] = current
    state[_SUM_PV] = sum_pv
    state[_SUM_V] = sum_v


SPEC = StrategySpec(
    kind="vwap_reversion",
    title="Session VWAP reversion",
    description="Fade moves away from the session VWAP; exit back at VWAP.",
    params_model=VwapReversionParams,
    kernel=vwap_reversion_kernel,
    state_size=lambda p: _STATE_SIZE,
    warmup=lambda p: 1,
    uses_sessions=True,
)
