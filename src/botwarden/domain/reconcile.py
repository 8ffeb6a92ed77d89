"""Reconciliation as a pure comparison: our orders and position against the broker's
reports, producing the actions that make them agree, or a mismatch that cannot be fixed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from botwarden.domain.orders import FINAL, OPEN
from botwarden.domain.trading import OrderStatus


@dataclass(frozen=True, slots=True)
class OurOrder:
    client_order_id: str
    status: OrderStatus
    qty: int
    filled_qty: int


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    client_order_id: str
    status: OrderStatus  # the broker's view, mapped to our vocabulary
    qty: int
    filled_qty: int
    avg_fill_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str
    client_order_id: str
    qty: int
    price: Decimal


class ActionKind(StrEnum):
    ADOPT_STATUS = "ADOPT_STATUS"  # take the broker's status for our order
    APPLY_FILL = "APPLY_FILL"  # a broker fill we have not applied
    MARK_REJECTED = "MARK_REJECTED"  # we think it was sent, the broker never saw it
    CANCEL_AT_BROKER = "CANCEL_AT_BROKER"  # a working order at the broker we do not know
    MISMATCH = "MISMATCH"  # cannot be explained by missing events: quarantine


@dataclass(frozen=True, slots=True)
class ReconcileAction:
    kind: ActionKind
    client_order_id: str | None
    detail: str
    fill: BrokerFill | None = None
    status: OrderStatus | None = None


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    actions: tuple[ReconcileAction, ...]
    expected_position: int  # our position after applying the fixable actions
    broker_position: int

    @property
    def drift(self) -> bool:
        return bool(self.actions) or self.expected_position != self.broker_position

    @property
    def fixable(self) -> bool:
        no_mismatch = all(a.kind is not ActionKind.MISMATCH for a in self.actions)
        return no_mismatch and self.expected_position == self.broker_position


def diff(
    ours: Sequence[OurOrder],
    our_position: int,
    applied_fill_ids: frozenset[str],
    broker_orders: Sequence[BrokerOrder],
    broker_fills: Sequence[BrokerFill],
    broker_position: int,
    fill_sides: dict[str, int],  # client order id -> +1 for BUY, -1 for SELL
) -> ReconcileReport:
    """Compare both sides. Missing fills are applied, unknown outcomes adopt the broker's
    status, orders the broker never received are rejected, unknown live broker orders are
    cancelled; whatever position difference remains after that is a MISMATCH."""
    actions: list[ReconcileAction] = []
    by_id = {o.client_order_id: o for o in broker_orders}
    ours_by_id = {o.client_order_id: o for o in ours}
    position = our_position
    for fill in broker_fills:
        if fill.fill_id in applied_fill_ids:
            continue
        if fill.client_order_id not in ours_by_id:
            actions.append(ReconcileAction(ActionKind.MISMATCH, fill.client_order_id,
                                           f"broker fill {fill.fill_id} for an unknown order"))
            continue
        actions.append(ReconcileAction(ActionKind.APPLY_FILL, fill.client_order_id,
                                       f"apply missed fill {fill.fill_id}", fill=fill))
        position += fill_sides.get(fill.client_order_id, 0) * fill.qty
    for order in ours:
        theirs = by_id.get(order.client_order_id)
        if theirs is None:
            if order.status in OPEN and order.status is not OrderStatus.PENDING:
                actions.append(ReconcileAction(ActionKind.MARK_REJECTED, order.client_order_id,
                                               "the broker has no record of this order",
                                               status=OrderStatus.REJECTED))
            continue
        if theirs.status != order.status:
            if order.status in FINAL:
                actions.append(ReconcileAction(
                    ActionKind.MISMATCH, order.client_order_id,
                    f"we hold {order.status.value}, the broker {theirs.status.value}"))
            else:
                actions.append(ReconcileAction(ActionKind.ADOPT_STATUS, order.client_order_id,
                                               f"{order.status.value} -> {theirs.status.value}",
                                               status=theirs.status))
    for theirs in broker_orders:
        if theirs.client_order_id not in ours_by_id and theirs.status in OPEN:
            actions.append(ReconcileAction(ActionKind.CANCEL_AT_BROKER, theirs.client_order_id,
                                           "a working broker order we did not send"))
    if position != broker_position:
        actions.append(ReconcileAction(ActionKind.MISMATCH, None,
                                       f"position {position} vs broker {broker_position}"))
    return ReconcileReport(tuple(actions), position, broker_position)
