"""Order statuses written in one statement on the hot path: an acknowledgement (PENDING to
WORKING) and a cancel of a working order (to CANCELED), each guarded by the status it may
start from (order_store.record_transition).

Inside `deferred_scope` (a runner's decisions on one bar) such a transition is held in
memory and written at the scope's end, after the bar's orders are sent, so no transaction
of its own stands between the bar and its orders. Until then the row shows the status
before (the broker's side of it is stored before: bar_transaction): after a crash the order
is settled by asking the broker, as for any order whose answer was lost. A transition
whose row has moved on is settled the long way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from botwarden.domain.trading import OrderStatus
from botwarden.trading import order_store as store
from botwarden.trading.order_store import StoredOrder

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager


@dataclass(frozen=True, slots=True)
class Deferred:
    """A transition held for the next write (`deferred_scope`)."""

    client_order_id: str
    status: OrderStatus
    broker_order_id: str | None
    before: StoredOrder  # the order as stored until then


def transition(manager: OrderManager, client_order_id: str, status: OrderStatus,
               broker_order_id: str | None) -> bool:
    """Move a held order to WORKING or CANCELED in one statement (held for the scope's end
    inside `deferred_scope`). False: not a quick case, take the long way (settle)."""
    current = manager.open.get(client_order_id)
    if current is None or current.status not in store.QUICK_TRANSITIONS.get(status, ()):
        return False
    if manager.deferred is not None:
        manager.deferred.append(Deferred(client_order_id, status, broker_order_id, current))
    else:
        with manager.write() as conn:
            if not store.record_transition(conn, client_order_id, status, broker_order_id,
                                           manager.clock()):
                return False
    manager.remember(replace(current, status=status))
    return True


@contextmanager
def deferred_scope(manager: OrderManager) -> Iterator[None]:
    """Hold quick transitions until the scope's end."""
    manager.deferred = []
    try:
        yield
    except BaseException:
        for entry in manager.deferred or []:  # not written: held as the rows say
            manager.remember(entry.before)
            manager.unsettled = manager.unsettled or entry.before.status is OrderStatus.PENDING
        manager.deferred = None
        raise
    entries, manager.deferred = manager.deferred, None
    if entries:
        with manager.write() as conn:
            late = write_deferred(manager, conn, entries)
        settle_late(manager, late)


def write_deferred(manager: OrderManager, conn: Connection, entries: list[Deferred],
                   ) -> list[Deferred]:
    """Write deferred transitions; returns those whose row had moved on."""
    now = manager.clock()
    return [e for e in entries if not store.record_transition(
        conn, e.client_order_id, e.status, e.broker_order_id, now)]


def settle_late(manager: OrderManager, late: list[Deferred]) -> None:
    for entry in late:
        manager.settle(entry.client_order_id, entry.status,
                       broker_order_id=entry.broker_order_id)
