"""The float engine agrees with the exact Decimal ledger (domain.ledger's FIFO book) to
the cent, on grids where float arithmetic is not exact (tick 0.01, fees like 0.62)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.instruments import INSTRUMENTS
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.ledger import ledger_final_equity, ledger_mismatches
from botwarden.research.strategies import build_strategy
from tests.research.factories import random_tick_bars


@settings(max_examples=40, deadline=None)
@given(
    symbol=st.sampled_from(sorted(INSTRUMENTS)),
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 7),
    slippage=st.integers(0, 3),
    stop=st.integers(0, 12),
    target=st.integers(0, 12),
    fee=st.sampled_from(["0.62", "2.25", "0.35", "1.01", "0"]),
)
def test_engine_money_agrees_with_the_ledger_to_the_cent(
    symbol: str, seed: int, size: int, slippage: int, stop: int, target: int, fee: str
) -> None:
    instrument = INSTRUMENTS[symbol]
    bars, _ = random_tick_bars(seed, 3_000, tick=str(instrument.tick_size))
    config = ExecutionConfig.for_instrument(
        instrument, size=size, slippage_ticks=slippage, stop_loss_ticks=stop,
        profit_target_ticks=target, commission_per_side=Decimal(fee), cash=Decimal("50000.37"))
    result = run_backtest(bars, build_strategy("sma_cross", {"fast": 3, "slow": 11}), config)
    assert result.metrics.trades > 20
    assert ledger_mismatches(result) == []
    exact = [trade.pnl for trade in result.trades()]
    assert np.allclose(result.pnls, [float(p) for p in exact], rtol=0, atol=0.005)


def test_the_check_notices_a_wrong_cent() -> None:
    bars, _ = random_tick_bars(5, 2_000, tick="0.01")
    config = ExecutionConfig.for_instrument(INSTRUMENTS["CL"], size=3)
    result = run_backtest(bars, build_strategy("sma_cross", {"fast": 3, "slow": 11}), config)
    assert ledger_mismatches(result) == []
    result.pnls[4] += 0.01
    assert ledger_mismatches(result) == [f"trade 4: engine {result.pnls[4]!r} vs "
                                         f"ledger {result.trades()[4].pnl}"]


def test_final_equity_with_an_open_position_is_exact() -> None:
    bars, _ = random_tick_bars(9, 500, tick="0.10")
    config = ExecutionConfig.for_instrument(INSTRUMENTS["MGC"], size=2)
    for seed_params in ({"fast": 2, "slow": 7}, {"fast": 4, "slow": 9}):
        result = run_backtest(bars, build_strategy("sma_cross", seed_params), config)
        assert result.open_position is not None  # stop-and-reverse is always in a position
        exact = ledger_final_equity(result)
        assert abs(Decimal(result.metrics.final_equity) - exact) < Decimal("0.01")
