"""Bars as columns: the one shape that the bar store, research and runners exchange."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

TIMEFRAME_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400}


@dataclass(frozen=True, slots=True)
class Bars:
    """OHLCV columns of equal length. `ts` is the bar's open time, int64 ns since the epoch
    (UTC), strictly increasing. Prices are floats on the instrument's tick grid."""

    symbol: str
    timeframe: str
    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> Bars:
        return Bars(
            self.symbol,
            self.timeframe,
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
        )
