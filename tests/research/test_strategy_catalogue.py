"""The catalogue, the bounded parameter schemas and the stored state's guard rails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from botwarden.domain.errors import DomainError
from botwarden.research.strategies import STRATEGIES, build_strategy, catalogue
from tests.research.factories import random_tick_bars


def test_catalogue_lists_every_kind_with_bounded_integer_parameters() -> None:
    entries = {entry["kind"]: entry for entry in catalogue()}
    assert set(entries) == set(STRATEGIES) == {"sma_cross", "ema_cross", "rsi_reversion",
                                               "donchian_breakout", "vwap_reversion",
                                               "opening_range"}
    for entry in entries.values():
        properties = entry["params_schema"]["properties"]
        assert properties
        for schema in properties.values():
            assert schema["type"] == "integer"
            assert schema["minimum"] <= schema["default"] <= schema["maximum"]
    json.dumps(entries)  # what GET /api/strategies serves must be JSON


@pytest.mark.parametrize(("kind", "params"), [
    ("sma_cross", {"fast": 0}),
    ("sma_cross", {"fast": 30, "slow": 30}),
    ("ema_cross", {"slow": 100_000}),
    ("rsi_reversion", {"lower": 60}),
    ("rsi_reversion", {"period": 14, "extra": 1}),
    ("donchian_breakout", {"period": "wide"}),
])
def test_out_of_bounds_or_unknown_parameters_are_refused(kind: str, params: dict) -> None:
    with pytest.raises(DomainError) as refused:
        build_strategy(kind, params)
    assert refused.value.code == "INVALID_STRATEGY_PARAMS" and refused.value.status == 422


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(DomainError) as refused:
        build_strategy("martingale")
    assert refused.value.code == "UNKNOWN_STRATEGY"


def test_a_state_is_only_accepted_by_its_own_kind_and_parameters() -> None:
    bars, sessions = random_tick_bars(3, 100)
    strategy = build_strategy("sma_cross", {"fast": 3, "slow": 9})
    state = strategy.initial_state()
    strategy.run(bars, state, sessions)
    stored = strategy.state_to_json(state)
    assert np.array_equal(strategy.state_from_json(stored), state)
    for other in (build_strategy("sma_cross", {"fast": 3, "slow": 10}),
                  build_strategy("ema_cross", {"fast": 3, "slow": 9})):
        with pytest.raises(DomainError) as refused:
            other.state_from_json(stored)
        assert refused.value.code == "STRATEGY_STATE_MISMATCH"


def test_session_strategies_need_session_ids() -> None:
    bars, _ = random_tick_bars(3, 10)
    strategy = build_strategy("opening_range")
    with pytest.raises(ValueError, match="session"):
        strategy.run(bars, strategy.initial_state())
