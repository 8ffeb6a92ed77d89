"""Fills into the order manager: the broker's fills applied once (fill_ledger), the exits
of our brackets recorded with them, and one-cancels-other mirrored after an exit fills.

The exits a fill brings into being (a bracketed entry's stop-loss and target, opened by the
broker at the entry's fill) are asked of the broker before the transaction opens and written
in the same transaction as the fill, so the book never holds a filled entry without its
exits, even after a crash right after the commit.

In a runner's bar the fills of the simulated broker's match (new by construction) are worked
out in memory, and written with the exits they opened after the bar's orders are sent
(`_deferred`), in the transaction that stores the broker's book holding them: a crash in
between leaves neither, and the restarted runner meets the bar again (bar_transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.trading import crashpoints, managed_exits
from botwarden.trading import fill_ledger as ledger
from botwarden.trading import order_store as store
from botwarden.trading.brokers.base import FillReport, OrderReport, bracket_ids
from botwarden.trading.order_store import NewOrder, StoredOrder

if TYPE_CHECKING:
    from botwarden.trading.order_manager import OrderManager


def take_fills(manager: OrderManager, reports: Sequence[FillReport], *, new: bool = False,
               ) -> list[ledger.AppliedFill]:
    """Apply new broker fills once, with the bracket exits they bring. `new`: none of them
    can have been applied before; in a runner's bar they are written later (`_deferred`)."""
    if not reports:
        return []
    # Exits to record with the fills: those filled here that we hold no row for, and
    # those a bracketed entry filled here has just opened at the broker.
    exits = {r.client_order_id for r in reports if r.client_order_id not in manager.open}
    if manager.native_brackets and manager.bracket is not None:
        for report in reports:
            entry = manager.open.get(report.client_order_id)
            if entry is not None and not entry.reduce_only \
                    and entry.parent_client_order_id is None:
                exits.update(leg for leg in bracket_ids(entry.client_order_id)
                             if leg not in manager.open)
    asked = exit_reports(manager, sorted(exits))  # before the transaction opens
    now = manager.clock()
    symbol = reports[0].symbol
    applied = _deferred(manager, reports, asked, now) \
        if new and manager.batch is not None else None
    if applied is None:
        with manager.write() as conn:
            # The fence and the stored position in one read: what the fills start from.
            book = ledger.fence_and_book(conn, manager.bot_id, manager.job_id, symbol)
            record_exits(manager, conn, asked, now)
            applied = ledger.apply_fills(conn, manager.bot_id, reports,
                                         source_type=manager.source_type,
                                         entry_times=manager.entry_times, now=now,
                                         known=manager.open, fresh_books={symbol: book})
    crashpoints.reached(crashpoints.FILLS_APPLIED)
    for item in applied:
        manager.books[item.fill.symbol] = item.book
        manager.remember(item.order)
    for item in applied:
        if item.order is not None:
            sync_bracket(manager, item.order)
    if not manager.native_brackets and applied:
        managed_exits.after_fills(manager, applied)
    return applied


def _deferred(manager: OrderManager, reports: Sequence[FillReport],
              exits: Sequence[OrderReport], now: datetime) -> list[ledger.AppliedFill] | None:
    """A runner's bar, with fills none of which was applied before: worked out from the
    orders and positions the manager holds, and written (the fills, the exits they opened)
    by the manager's next write after the bar's orders are sent (bar_transaction). None
    when something they need is not held: apply them the long way."""
    if any(r.parent_client_order_id not in manager.open for r in exits):
        return None
    plan = ledger.plan_new_fills(manager.bot_id, reports, source_type=manager.source_type,
                                 entry_times=manager.entry_times, now=now,
                                 known=manager.open, books=manager.books)
    if plan is None:
        return None
    rows = [store.order_row(manager.bot_id, job_id, order, broker=manager.broker.name,
                            mode=manager.mode, now=now, status=status, reject_code=None)
            for order, job_id, status in (_exit_order(manager, r) for r in exits)]
    bot_id, job_id = manager.bot_id, manager.job_id

    def write(conn: Connection) -> None:
        store.check_fence(conn, bot_id, job_id)
        store.insert_intents(conn, [], rows)
        plan.write(conn)

    manager.pending.append(write)
    for row in rows:
        manager.remember(_stored_exit(row))
    return plan.applied


def adopt_exits(manager: OrderManager, client_order_ids: Sequence[str]) -> None:
    """Record broker orders we did not place ourselves (the exits of our brackets), in
    one transaction; the broker is asked about them before it opens."""
    exits = exit_reports(manager, client_order_ids)
    if exits:
        with manager.write() as conn:
            record_exits(manager, conn, exits, manager.clock())


def exit_reports(manager: OrderManager, client_order_ids: Sequence[str]) -> list[OrderReport]:
    reports = [manager.broker.query_order(c) for c in client_order_ids]
    return [r for r in reports if r is not None and r.parent_client_order_id is not None]


def record_exits(manager: OrderManager, conn: Connection, exits: Sequence[OrderReport],
                 now: datetime) -> None:
    """Rows for bracket exits the broker opened, booked to their entry's runner."""
    for report in exits:
        order, job_id, status = _exit_order(manager, report, conn)
        order_id = store.insert_order_if_absent(
            conn, manager.bot_id, job_id, order, broker=manager.broker.name, mode=manager.mode,
            now=now, status=status)
        manager.remember(store.get_order(conn, order.client_order_id) if order_id is None
                         else StoredOrder(order_id, order.client_order_id, job_id,
                                          order.symbol, order.side, order.qty,
                                          order.order_type, status, 0, order.limit_price,
                                          order.stop_price, True, order.parent_client_order_id,
                                          now))


def _exit_order(manager: OrderManager, report: OrderReport, conn: Connection | None = None,
                ) -> tuple[NewOrder, str | None, OrderStatus]:
    """A bracket exit the broker opened, as we record it: the order, the runner job it is
    booked to (its entry's), its status."""
    parent_id = report.parent_client_order_id
    assert parent_id is not None
    parent = manager.open.get(parent_id) or (
        store.get_order(conn, parent_id) if conn is not None else None)
    job_id = parent.job_id if parent else manager.job_id
    status = OrderStatus.WORKING if report.status in (
        OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED) else report.status
    return (NewOrder(report.client_order_id, report.symbol, report.side, report.qty,
                     report.order_type, report.limit_price, report.stop_price,
                     reduce_only=True, reason="bracket exit", parent_client_order_id=parent_id),
            job_id, status)


def _stored_exit(row: dict[str, Any]) -> StoredOrder:
    return StoredOrder(row["id"], row["client_order_id"], row["job_id"], row["symbol"],
                       Side(row["side"]), row["qty"], OrderType(row["order_type"]),
                       OrderStatus(row["status"]), 0, row["limit_price"], row["stop_price"],
                       True, row["parent_client_order_id"], row["created_at"])


def sync_bracket(manager: OrderManager, row: StoredOrder) -> None:
    """After an entry's fill its exits exist at the broker: adopt them. After an exit's
    fill its one-cancels-other sibling is cancelled there: mirror that."""
    client_order_id = row.client_order_id
    if row.parent_client_order_id is not None:
        for leg in bracket_ids(row.parent_client_order_id):
            sibling = manager.open.get(leg)
            if leg == client_order_id or sibling is None:
                continue
            report = manager.broker.query_order(leg)
            if report is not None and report.status is not sibling.status:
                manager.adopt_report(report)
    elif not row.reduce_only and manager.bracket is not None:
        adopt_exits(manager, [leg for leg in bracket_ids(client_order_id)
                              if leg not in manager.open])
