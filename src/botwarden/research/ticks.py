"""Bars on the tick grid: prices as exact integer tick counts for the kernels.

Strategy and fill kernels compare and add integers, never float prices, so a tie stays a
tie and a fill price is always on the grid. Floats come back only for money, which is
checked against an exact Decimal ledger (research.ledger).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
from numba import njit

from botwarden.domain.bars import F64, I64, Bars
from botwarden.domain.errors import DomainError

# A price further than this many ticks from the grid is refused rather than rounded:
# float storage of an on-grid price is off by ~1e-12 ticks, a real off-grid price by far more.
GRID_TOLERANCE_TICKS = 1e-6


@njit(cache=True, nogil=True)
def _prices_to_ticks(prices, tick_size, out):  # type: ignore[no-untyped-def]
    """Fill `out` with rounded tick counts; return the index of the first off-grid price
    (or of a NaN), -1 when every price is on the grid."""
    for i in range(prices.shape[0]):
        exact = prices[i] / tick_size
        ticks = np.floor(exact + 0.5)
        if not abs(exact - ticks) <= GRID_TOLERANCE_TICKS:
            return i
        out[i] = np.int64(ticks)
    return -1


def prices_to_ticks(prices: F64, tick_size: Decimal, what: str = "price") -> I64:
    values = np.ascontiguousarray(prices, dtype=np.float64)
    out = np.empty(values.shape[0], dtype=np.int64)
    bad = _prices_to_ticks(values, float(tick_size), out)
    if bad >= 0:
        raise DomainError(
            "PRICE_OFF_TICK_GRID",
            f"{what} {values[bad]!r} at row {bad} is not a multiple of the tick size {tick_size}",
            "Use bars of the instrument this tick size belongs to, or pass its tick size.",
            status=422,
        )
    return out


@dataclass(frozen=True, slots=True)
class TickBars:
    """OHLC as int64 ticks, volume as float64, `ts` as int64 ns UTC (bar open time)."""

    ts: I64
    open: I64
    high: I64
    low: I64
    close: I64
    volume: F64
    tick_size: Decimal

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> TickBars:
        return TickBars(
            self.ts[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            self.tick_size,
        )

    def price(self, ticks: int) -> Decimal:
        return self.tick_size * ticks


def to_tick_bars(bars: Bars, tick_size: Decimal) -> TickBars:
    """Convert and validate: every price must lie on the grid of `tick_size`."""
    return TickBars(
        ts=np.ascontiguousarray(bars.ts, dtype=np.int64),
        open=prices_to_ticks(bars.open, tick_size, "open"),
        high=prices_to_ticks(bars.high, tick_size, "high"),
        low=prices_to_ticks(bars.low, tick_size, "low"),
        close=prices_to_ticks(bars.close, tick_size, "close"),
        volume=np.ascontiguousarray(bars.volume, dtype=np.float64),
        tick_size=tick_size,
    )
