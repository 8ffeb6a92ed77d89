"""Bars for research tests: hand-written rows or random walks, already on the tick grid."""

from __future__ import annotations

from decimal import Decimal

import numpy as np

from botwarden.research.ticks import TickBars

NS_MINUTE = 60_000_000_000


def rows_to_tick_bars(rows: list[tuple[int, int, int, int]], tick: str = "0.25",
                      volume: float = 1.0) -> TickBars:
    """(open, high, low, close) in ticks, one bar a minute."""
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    n = table.shape[0]
    ohlc = (table[:, k].copy() for k in range(4))
    return TickBars(np.arange(n, dtype=np.int64) * NS_MINUTE, *ohlc, np.full(n, volume),
                    Decimal(tick))


def random_tick_bars(seed: int, n: int, tick: str = "0.25",
                     session_prob: float = 0.05) -> tuple[TickBars, np.ndarray]:
    """A random walk of small steps (so moving averages tie often) and session ids that
    start a new session with probability `session_prob` per bar."""
    rng = np.random.default_rng(seed)
    close = 2_000 + np.cumsum(rng.integers(-3, 4, n))
    open_ = np.r_[2_000, close[:-1]] + rng.integers(-1, 2, n)
    high = np.maximum(open_, close) + rng.integers(0, 3, n)
    low = np.minimum(open_, close) - rng.integers(0, 3, n)
    volume = rng.integers(0, 20, n).astype(np.float64)
    sessions = np.cumsum(rng.random(n) < session_prob).astype(np.int64)
    bars = TickBars(np.arange(n, dtype=np.int64) * NS_MINUTE, open_.astype(np.int64),
                    high.astype(np.int64), low.astype(np.int64), close.astype(np.int64), volume,
                    Decimal(tick))
    return bars, sessions
