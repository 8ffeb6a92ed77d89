"""The paper broker: simulated fills by the backtest's rules, on its own persisted book.

    broker = PaperBroker("bot-123", SqlStateStore(engine), slippage_ticks=1)
    broker.submit(OrderRequest("c-1", "MES", Side.BUY, 1, OrderType.MARKET,
                               bracket=Bracket(stop_loss_ticks=8, profit_target_ticks=16)))
    broker.on_bar("MES", bar)   # -> the fills this bar made

Orders sent between bars meet the next bar: market orders fill at its open plus slippage;
stops and limits by `fill_rules` (the backtest kernel's rules). A bracket's exits start
working at their entry's fill, so a market entry's exits already see the rest of that bar,
as the backtest's stop-loss and profit target do. With the same bars, orders and settings,
the paper broker makes exactly the backtest's fills (tests/trading/brokers/
test_paper_parity.py).
"""

from __future__ import annotations

from typing import Any

from botwarden.data.providers.base import Bar
from botwarden.domain.instruments import Instrument
from botwarden.domain.trading import OrderType
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.brokers.fill_rules import (
    limit_fill,
    market_fill,
    stop_fill,
    to_tick_bar,
)
from botwarden.trading.brokers.sim_state import SimOrder
from botwarden.trading.brokers.simulated import SimulatedBrokerCore
from botwarden.trading.brokers.state_store import StateStore


class PaperBroker(SimulatedBrokerCore):
    name = "paper"

    def __init__(self, account_key: str, store: StateStore, *, slippage_ticks: int = 0,
                 **options: Any) -> None:
        if slippage_ticks < 0:
            raise ValueError("slippage is a count of ticks >= 0")
        super().__init__(account_key, store, **options)
        self.slippage_ticks = slippage_ticks

    def _accepted(self, order: SimOrder, instrument: Instrument) -> None:
        """Nothing fills on arrival: every order meets the market at the next bar."""

    def _match(self, symbol: str, instrument: Instrument, bar: Bar) -> list[FillReport]:
        state = self._state
        tick_bar = to_tick_bar(bar, instrument)
        at = bar.at
        slip = self.slippage_ticks
        # 1. market orders at the open, in the order they were sent (a reversal's exit first);
        #    their brackets work from this open on.
        working = state.working(symbol)
        fills = [self._fill(order, market_fill(order.side, tick_bar, slip), instrument, at,
                            exits_from_ns=tick_bar.ts)
                 for order in working if order.order_type is OrderType.MARKET]
        # 2. resting orders: stops before limits. An exit opened by a fill inside this bar
        #    starts working after it (ts + 1): the bar's path after that fill is unknown.
        resting = state.working(symbol) if fills else working
        for order_type in (OrderType.STOP, OrderType.LIMIT):
            for order in [o for o in resting if o.order_type is order_type]:
                since = order.active_since_ns
                if not order.is_open or (since is not None and since > tick_bar.ts):
                    continue
                rested = since is None or since < tick_bar.ts
                if order_type is OrderType.STOP:
                    assert order.stop_price is not None
                    ticks = stop_fill(order.side, instrument.to_ticks(order.stop_price),
                                      tick_bar, rested, slip)
                else:
                    assert order.limit_price is not None
                    ticks = limit_fill(order.side, instrument.to_ticks(order.limit_price),
                                       tick_bar, rested)
                if ticks is not None:
                    fills.append(self._fill(order, ticks, instrument, at,
                                            exits_from_ns=tick_bar.ts + 1))
        return fills
