"""Our engine against backtesting.py (a peer, dev-only, AGPL: never imported by src/).

SMA(10) / SMA(20) stop-and-reverse on GOOG, 10 whole units, a fixed commission per unit
per side, next-open fills, no slippage; the open position is marked to the last close.
Trades must be identical and final equity equal within 1e-6 relative."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from botwarden.domain.bars import Bars
from botwarden.research.engine import ExecutionConfig, run_backtest
from botwarden.research.strategies import build_strategy

SIZE = 10
FEE_PER_UNIT = 0.35
CASH = 100_000


class SmaCross(Strategy):
    fast = 10
    slow = 20

    def init(self) -> None:
        self.sma_fast = self.I(SMA, self.data.Close, self.fast)
        self.sma_slow = self.I(SMA, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            self.position.close()
            self.buy(size=SIZE)
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()
            self.sell(size=SIZE)


@pytest.fixture(scope="module")
def peer():
    bt = Backtest(GOOG, SmaCross, cash=CASH, trade_on_close=False, exclusive_orders=False,
                  commission=lambda size, price: abs(size) * FEE_PER_UNIT)
    with pytest.warns(UserWarning, match="remain open"):  # the position open at the end
        return bt.run()


@pytest.fixture(scope="module")
def ours():
    ts = GOOG.index.values.astype("datetime64[ns]").astype(np.int64)
    names = ("Open", "High", "Low", "Close", "Volume")
    columns = [GOOG[c].to_numpy(dtype=np.float64) for c in names]
    bars = Bars("GOOG", "1d", ts, *columns)
    config = ExecutionConfig(Decimal("0.01"), Decimal(1), Decimal(str(FEE_PER_UNIT)), size=SIZE,
                             cash=Decimal(CASH))
    return run_backtest(bars, build_strategy("sma_cross", {"fast": 10, "slow": 20}), config)


def test_identical_trades(peer, ours) -> None:
    theirs = peer["_trades"]
    mine = ours.trades()
    assert len(theirs) == len(mine) > 50
    for their, my in zip(theirs.itertuples(), mine, strict=True):
        assert their.EntryTime.to_pydatetime().date() == my.entry_time.date()
        assert their.ExitTime.to_pydatetime().date() == my.exit_time.date()
        assert (their.Size > 0) == (my.side == "LONG") and abs(their.Size) == my.qty
        assert their.EntryPrice == pytest.approx(float(my.entry_price), abs=1e-9)
        assert their.ExitPrice == pytest.approx(float(my.exit_price), abs=1e-9)
        assert their.PnL == pytest.approx(float(my.pnl), rel=1e-9, abs=1e-6)


def test_final_equity_marks_open_position(peer, ours) -> None:
    assert ours.open_position is not None  # the run ends in a position: finalisation matters
    assert ours.metrics.final_equity == pytest.approx(peer["Equity Final [$]"], rel=1e-6)
    assert ours.equity is not None
    np.testing.assert_allclose(ours.equity, peer["_equity_curve"]["Equity"].to_numpy(), rtol=1e-9)
