"""Protective exits for brokers without native brackets (the Tradovate adapter places none).

The order manager then places the bracket's stop-loss and profit target itself, as two
orders of the entry's size, once the entry has filled: a STOP at the stop-loss distance and
a LIMIT at the profit target, named `managed_ids` (not the native legs' suffixes, which
brokers reserve) and linked to the entry by `parent_client_order_id`. They go through the
risk engine as system orders; when one fills, the other is cancelled (one-cancels-other,
done by us). A signal exit cancels both first, as it does native legs (RunnerCore:
`working_children`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from botwarden.domain.instruments import get_instrument
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading.brokers.fill_rules import bracket_prices
from botwarden.trading.order_store import NewOrder

if TYPE_CHECKING:
    from botwarden.trading.fill_ledger import AppliedFill
    from botwarden.trading.order_manager import OrderManager

MANAGED_STOP_SUFFIX = ":MSL"
MANAGED_TARGET_SUFFIX = ":MTP"


def managed_ids(entry_client_order_id: str) -> tuple[str, str]:
    """(stop-loss id, profit-target id) of the exits this module places for an entry."""
    entry = entry_client_order_id
    return entry + MANAGED_STOP_SUFFIX, entry + MANAGED_TARGET_SUFFIX


def after_fills(manager: OrderManager, applied: Sequence[AppliedFill]) -> None:
    bracket = manager.bracket
    if bracket is None:
        return
    for item in applied:
        fill, row = item.fill, item.order
        if row is None:
            continue
        if row.parent_client_order_id is not None:
            for leg in managed_ids(row.parent_client_order_id):
                if leg != row.client_order_id and leg in manager.open:
                    manager.cancel(leg)
            continue
        if row.reduce_only or row.status is not OrderStatus.FILLED \
                or manager.last_ctx is None:
            continue
        instrument = get_instrument(row.symbol)
        stop, target = bracket_prices(row.side, instrument.to_ticks(fill.price),
                                      bracket.stop_loss_ticks, bracket.profit_target_ticks)
        exit_side = Side.SELL if row.side is Side.BUY else Side.BUY
        stop_id, target_id = managed_ids(row.client_order_id)
        legs: list[NewOrder] = []
        if stop is not None:
            legs.append(NewOrder(stop_id, row.symbol, exit_side, row.qty, OrderType.STOP,
                                 stop_price=instrument.from_ticks(stop), reduce_only=True,
                                 reason="STOP_LOSS", parent_client_order_id=row.client_order_id))
        if target is not None:
            legs.append(NewOrder(target_id, row.symbol, exit_side, row.qty, OrderType.LIMIT,
                                 limit_price=instrument.from_ticks(target), reduce_only=True,
                                 reason="PROFIT_TARGET",
                                 parent_client_order_id=row.client_order_id))
        for exit_order in legs:
            if exit_order.client_order_id not in manager.seen_ids:
                manager.place(exit_order, manager.last_ctx, system_flatten=True)
