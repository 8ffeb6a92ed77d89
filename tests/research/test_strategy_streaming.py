"""One code path: a strategy fed one bar at a time, restarted from its JSON state before
every bar, decides exactly what it decides on the whole array at once."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.research.strategies import STRATEGIES, build_strategy
from tests.research.factories import random_tick_bars


def _windows(low: int, high: int, longest: int) -> st.SearchStrategy[dict[str, int]]:
    return st.integers(low, high).flatmap(
        lambda fast: st.fixed_dictionaries({"fast": st.just(fast),
                                            "slow": st.integers(fast + 1, longest)}))


PARAMS = {
    "sma_cross": _windows(1, 8, 16),
    "ema_cross": _windows(1, 8, 16),
    "rsi_reversion": st.fixed_dictionaries({"period": st.integers(2, 10),
                                            "lower": st.integers(5, 45),
                                            "upper": st.integers(55, 95)}),
    "donchian_breakout": st.fixed_dictionaries({"period": st.integers(1, 12)}),
    "vwap_reversion": st.fixed_dictionaries({"band_ticks": st.integers(1, 6)}),
    "opening_range": st.fixed_dictionaries({"range_bars": st.integers(1, 6)}),
}


def test_every_builtin_has_a_params_strategy_here() -> None:
    assert set(PARAMS) == set(STRATEGIES)


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
@settings(max_examples=40, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 160))
def test_bar_by_bar_with_restarts_equals_whole_array(kind: str, data: st.DataObject, seed: int,
                                                     n: int) -> None:
    strategy = build_strategy(kind, data.draw(PARAMS[kind], label="params"))
    split = data.draw(st.integers(0, n), label="split")
    bars, sessions = random_tick_bars(seed, n)

    whole = strategy.run(bars, strategy.initial_state(), sessions)

    state = strategy.initial_state()
    parts = [strategy.run(bars.slice(0, split), state, sessions[:split])]
    stored = strategy.state_to_json(state)
    for i in range(split, n):
        state = strategy.state_from_json(stored)  # a runner restart before every bar
        parts.append(strategy.run(bars.slice(i, i + 1), state, sessions[i : i + 1]))
        stored = strategy.state_to_json(state)

    assert np.array_equal(np.concatenate(parts), whole)
    assert set(np.unique(whole)) <= {-1, 0, 1}
    assert not whole[: max(strategy.warmup - 1, 0)].any()  # nothing before the warm-up


@pytest.mark.parametrize("kind", sorted(STRATEGIES))
def test_each_builtin_takes_both_sides_on_a_random_walk(kind: str) -> None:
    strategy = build_strategy(kind, {})
    bars, sessions = random_tick_bars(seed=11, n=5_000, session_prob=0.004)
    targets = strategy.run(bars, strategy.initial_state(), sessions)
    assert (targets == 1).any() and (targets == -1).any()
