"""Builders for the market-data tests: small, deterministic bars."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from botwarden.domain.bars import Bars

NS_MIN = 60_000_000_000


def utc(text: str) -> datetime:
    """'2024-03-05 21:59' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def ns(text: str) -> int:
    moment = utc(text)
    return int(moment.timestamp()) * 1_000_000_000


def make_bars(ts: np.ndarray | list[int], symbol: str = "MES", seed: int = 0) -> Bars:
    """Valid on-grid 1-minute bars (tick 0.25) at the given open times."""
    ts = np.asarray(ts, dtype=np.int64)
    rng = np.random.default_rng(seed)
    n = ts.size
    close = 5000 + np.cumsum(rng.integers(-4, 5, n)) * 0.25
    open_ = np.concatenate(([5000.0], close[:-1]))
    high = np.maximum(open_, close) + rng.integers(0, 3, n) * 0.25
    low = np.minimum(open_, close) - rng.integers(0, 3, n) * 0.25
    volume = rng.integers(1, 500, n).astype(np.float64)
    return Bars(symbol, "1m", ts, open_, high, low, close, volume)


def minutes(start: str, count: int) -> np.ndarray:
    return ns(start) + np.arange(count, dtype=np.int64) * NS_MIN


def assert_bars_equal(left: Bars, right: Bars) -> None:
    assert (left.symbol, left.timeframe, len(left)) == (right.symbol, right.timeframe, len(right))
    for name in ("ts", "open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)
