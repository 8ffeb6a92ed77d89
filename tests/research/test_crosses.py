"""Crosses are decided exactly: strictly below on the previous bar, strictly above on this
one (or the mirror); a tie is a tie even where float arithmetic would see a difference."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from botwarden.domain.bars import Bars
from botwarden.research.strategies import build_strategy
from botwarden.research.ticks import to_tick_bars
from tests.research.factories import random_tick_bars

CENT = Decimal("0.01")


def closes_to_bars(closes: list[float]) -> Bars:
    prices = np.array(closes, dtype=np.float64)
    ts = np.arange(len(closes), dtype=np.int64) * 60_000_000_000
    return Bars("TEST", "1m", ts, prices, prices, prices, prices, np.ones(len(closes)))


def run(kind: str, params: dict[str, int], closes: list[float]) -> np.ndarray:
    strategy = build_strategy(kind, params)
    bars = to_tick_bars(closes_to_bars(closes), CENT)
    return strategy.run(bars, strategy.initial_state())


def test_sma_tie_that_floats_get_wrong_is_no_cross() -> None:
    # SMA(1) vs SMA(3): below at 0.69, an exact tie at 0.35 (mean of 0.01, 0.69, 0.35),
    # above at 1.00. A tie is not "strictly below", so 1.00 is no cross either.
    closes = [2.00, 2.00, 0.01, 0.69, 0.35, 1.00]
    float_slow = np.convolve(closes, np.ones(3), "valid") / 3
    assert float_slow[2] < closes[4]  # float noise: the tie looks like "above"...
    float_rel = np.sign(np.array(closes[2:]) - float_slow)
    assert list(float_rel[1:3]) == [-1, 1]  # ...so a float engine would see a cross here

    assert not run("sma_cross", {"fast": 1, "slow": 3}, closes).any()


def test_sma_strict_cross_up_and_down() -> None:
    closes = [1.00, 1.00, 0.90, 1.20, 1.25, 0.50, 0.40]
    targets = run("sma_cross", {"fast": 1, "slow": 3}, closes)
    # bar 2: 0.90 < 0.9667 below; bar 3: 1.20 > 1.0333 above -> long; bar 5: 0.50 < 0.9833
    assert list(targets) == [0, 0, 0, 1, 1, -1, -1]


def test_ema_tie_then_move_is_no_cross_and_later_crosses_count() -> None:
    closes = [1.00] * 10 + [1.01] + [0.95] * 5 + [1.10] * 5
    targets = run("ema_cross", {"fast": 2, "slow": 5}, closes)
    assert not targets[:11].any()  # equal EMAs, then above from a tie: no cross
    assert targets[11] == -1  # above -> below
    assert targets[16] == 1  # below -> above
    assert list(targets[11:16]) == [-1] * 5


def _float_ema_targets(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, float]:
    """A float reference of the same rules; also the closest the EMAs come at a decision."""
    ema_fast = ema_slow = float(close[0])
    prev, target, closest = 0, 0, np.inf
    out = np.zeros(close.shape[0], dtype=np.int8)
    for i, price in enumerate(close.astype(np.float64).tolist()):
        if i:
            ema_fast += 2 / (fast + 1) * (price - ema_fast)
            ema_slow += 2 / (slow + 1) * (price - ema_slow)
        if i + 1 >= slow:
            gap = ema_fast - ema_slow
            closest = min(closest, abs(gap))
            sign = (gap > 0) - (gap < 0)
            if i + 1 > slow:
                target = 1 if prev < 0 < sign else -1 if prev > 0 > sign else target
            prev = sign
        out[i] = target
    return out, closest


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fixed_point_ema_cross_is_the_ema_cross(seed: int) -> None:
    bars, _ = random_tick_bars(seed, 3_000)
    strategy = build_strategy("ema_cross", {"fast": 5, "slow": 21})
    expected, closest = _float_ema_targets(bars.close, 5, 21)
    assert closest > 1e-4  # no near-tie: float and fixed point must agree everywhere
    targets = strategy.run(bars, strategy.initial_state())
    assert np.array_equal(targets, expected)
    assert (targets != 0).sum() > 1_000
