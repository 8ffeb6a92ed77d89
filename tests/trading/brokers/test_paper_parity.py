"""The paper broker fills exactly as the backtest engine does.

Hypothesis draws random tick-grid bars, a random sequence of strategy targets and random
execution settings (size, slippage, stop-loss, profit target, fee). The backtest kernel
(`research.engine.simulate_targets`) runs them; a minimal order-sending loop drives the
paper broker with the orders the kernel's rules imply: at each bar's close, a market exit
(after cancelling the old bracket) and a market entry with its stop-loss / profit-target
bracket. Every trade (entry and exit bar, side, quantity, entry and exit tick, exit reason)
and the exact realised PnL must be the same.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from botwarden.domain.trading import Side
from botwarden.research import fill_kernel as fk
from botwarden.research.engine import ExecutionConfig, simulate_targets
from botwarden.research.ledger import replay
from botwarden.trading.brokers import Bracket, MemoryStateStore, PaperBroker
from tests.research.factories import rows_to_tick_bars
from tests.trading.brokers.helpers import bar, market

Row = tuple[int, int, int, int]
EXIT_REASON = {":SL": fk.EXIT_STOP_LOSS, ":TP": fk.EXIT_PROFIT_TARGET}


@st.composite
def tick_bars(draw: st.DrawFn) -> list[Row]:
    n = draw(st.integers(2, 40))
    close = 16_000
    rows = []
    for _ in range(n):
        open_ = close + draw(st.integers(-4, 4))
        close = open_ + draw(st.integers(-4, 4))
        high = max(open_, close) + draw(st.integers(0, 4))
        low = min(open_, close) - draw(st.integers(0, 4))
        rows.append((open_, high, low, close))
    return rows


def drive_paper(rows: list[Row], targets: list[int], cfg: ExecutionConfig
                ) -> tuple[list[tuple[int, ...]], PaperBroker]:
    """Send the orders the kernel's target-following implies, bar by bar; return the
    trades as kernel records."""
    broker = PaperBroker("parity", MemoryStateStore(), slippage_ticks=cfg.slippage_ticks,
                         fees={"MES": cfg.commission_per_side})
    bracket = None
    if cfg.stop_loss_ticks or cfg.profit_target_ticks:
        bracket = Bracket(cfg.stop_loss_ticks or None, cfg.profit_target_ticks or None)
    latched, previous_target, ids = False, 0, 0
    trades: list[tuple[int, ...]] = []
    entry: tuple[int, int, int] | None = None  # (bar, signed qty, ticks)
    for i, row in enumerate(rows):
        if i > 0:  # the decision taken at bar i-1's close, sent before bar i opens
            wanted_side = targets[i - 1]
            if wanted_side != previous_target:
                latched, previous_target = False, wanted_side
            wanted = 0 if latched else wanted_side * cfg.size
            position = broker.position("MES").qty
            if position != 0 and (wanted == 0 or (wanted > 0) != (position > 0)):
                for order in broker.open_orders("MES"):
                    broker.cancel(order.client_order_id)
                ids += 1
                broker.submit(market(f"x{ids}", Side.SELL if position > 0 else Side.BUY,
                                     abs(position)))
                position = 0
            if position == 0 and wanted != 0:
                ids += 1
                broker.submit(market(f"e{ids}", Side.BUY if wanted > 0 else Side.SELL,
                                     abs(wanted), bracket))
        for fill in broker.on_bar("MES", bar(i, *row)):
            ticks = int(fill.price / Decimal("0.25"))
            signed = fill.qty if fill.side is Side.BUY else -fill.qty
            if entry is None:
                entry = (i, signed, ticks)
                continue
            reason = EXIT_REASON.get(fill.client_order_id[-3:], fk.EXIT_SIGNAL)
            side = 1 if entry[1] > 0 else -1
            trades.append((entry[0], i, side, abs(entry[1]), entry[2], ticks, reason))
            entry = None
            if reason != fk.EXIT_SIGNAL:
                latched = True
    return trades, broker


@settings(max_examples=300, deadline=None)
@given(
    rows=tick_bars(),
    data=st.data(),
    size=st.integers(1, 3),
    slippage=st.integers(0, 2),
    stop_loss=st.integers(0, 6),
    target=st.integers(0, 6),
    fee=st.sampled_from(["0", "0.62", "2.25"]),
)
def test_paper_fills_are_the_backtest_fills(rows: list[Row], data: st.DataObject, size: int,
                                            slippage: int, stop_loss: int, target: int,
                                            fee: str) -> None:
    targets = data.draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=len(rows),
                                 max_size=len(rows)))
    cfg = ExecutionConfig(Decimal("0.25"), Decimal(5), Decimal(fee), size=size,
                          slippage_ticks=slippage, stop_loss_ticks=stop_loss,
                          profit_target_ticks=target, cash=Decimal(100_000))
    result = simulate_targets(rows_to_tick_bars(rows), np.array(targets, dtype=np.int8), cfg,
                              days=np.zeros(len(rows), np.int64))
    expected = [tuple(int(x) for x in record) for record in result.records]

    trades, broker = drive_paper(rows, targets, cfg)

    assert trades == expected
    position = broker.position("MES")
    open_entry = None
    if result.open_position is not None:
        sign = 1 if result.open_position.side == "LONG" else -1
        open_entry = (sign * result.open_position.qty,
                      int(result.open_position.entry_price / cfg.tick_size))
        assert position.qty == open_entry[0]
        assert position.avg_price == result.open_position.entry_price
    else:
        assert position.qty == 0
    exact = replay(result.records, cfg, open_entry).book
    assert position.realized_pnl == exact.realized_pnl
    assert position.fees == exact.fees
