"""Fills into our book: each broker fill applied once, with the order's filled quantity, the
position (exact FIFO lots) and the trade log row, in the caller's transaction.

The runner calls this on every bar that fills, so it keeps round trips few: the caller may
pass the orders it already holds (`known`) and the position it read with its fence
(`fresh_books`). What it holds can be stale only if another writer (a reconcile) touched the
same order in between: the order's update is guarded by the filled quantity it expects, and
a miss re-reads the row and applies the fill to what is really there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from botwarden.domain.instruments import get_instrument
from botwarden.domain.ledger import Book, apply_fill
from botwarden.domain.orders import status_for_fill
from botwarden.ids import new_id
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.order_store import (
    FenceLost,
    StoredOrder,
    fenced_gate,
    fills,
    orders,
    positions,
    runner_states,
    stored_order,
    trade_logs,
)

# Built once: these run on every bar that fills.
_NEW_FILLS = {
    name: dialect.insert(fills).on_conflict_do_nothing(index_elements=[fills.c.fill_id])
    .returning(fills.c.fill_id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}
_INSERT_FILLS = fills.insert()
_FILL_ORDER = (orders.update()
               .where(orders.c.id == sa.bindparam("oid"),
                      orders.c.filled_qty == sa.bindparam("was_filled"))
               .values(filled_qty=sa.bindparam("now_filled"), avg_fill_price=sa.bindparam("avg"),
                       status=sa.bindparam("new_status"),
                       broker_order_id=sa.func.coalesce(orders.c.broker_order_id,
                                                        sa.bindparam("boid")),
                       updated_at=sa.bindparam("at")))
_ORDER_OF = sa.select(orders).where(orders.c.client_order_id == sa.bindparam("cid"))
_BOOK = sa.select(positions.c.qty, positions.c.lots, positions.c.realized_pnl, positions.c.fees)
_BOOK_OF = _BOOK.where(positions.c.bot_id == sa.bindparam("bot_id"),
                       positions.c.symbol == sa.bindparam("symbol"))
_FENCE_BOOK = (
    sa.select(runner_states.c.job_id, *_BOOK.selected_columns)
    .select_from(runner_states.outerjoin(positions, sa.and_(
        positions.c.bot_id == runner_states.c.bot_id,
        positions.c.symbol == sa.bindparam("symbol"))))
    .where(runner_states.c.bot_id == sa.bindparam("bot_id")))
_FENCE_BOOK_LOCKED = _FENCE_BOOK.with_for_update(of=runner_states)
_SAVE_BOOK = (positions.update()
              .where(positions.c.bot_id == sa.bindparam("bot"),
                     positions.c.symbol == sa.bindparam("sym"))
              .values(qty=sa.bindparam("new_qty"), avg_price=sa.bindparam("avg"),
                      lots=sa.bindparam("new_lots", type_=positions.c.lots.type),
                      realized_pnl=sa.bindparam("realized"), fees=sa.bindparam("new_fees"),
                      updated_at=sa.bindparam("at")))


@dataclass(frozen=True, slots=True)
class AppliedFill:
    fill: FillReport
    book: Book
    closed_pnl: Decimal | None  # net of both sides' fees, when the fill closed a trade
    order: StoredOrder | None = None  # the order as this fill left it


def _book(row: Any) -> Book:
    if row is None or row.qty is None:
        return Book()
    lots = tuple((int(q), Decimal(str(p))) for q, p in (row.lots or []))
    return Book(row.qty, lots, row.realized_pnl, row.fees)


def load_book(conn: Connection, bot_id: str, symbol: str) -> Book:
    return _book(conn.execute(_BOOK_OF, {"bot_id": bot_id, "symbol": symbol}).first())


def gate_and_book(conn: Connection, bot_id: str, job_id: str, symbol: str) -> tuple[Any, Book]:
    """`order_store.fenced_gate` and the position of `symbol` as stored, in one query."""
    row = fenced_gate(conn, bot_id, job_id, symbol)
    return row, _book(row)


def fence_and_book(conn: Connection, bot_id: str, job_id: str | None, symbol: str) -> Book:
    """`order_store.check_fence` and the position of `symbol` as stored, in one query."""
    query = _FENCE_BOOK_LOCKED if conn.dialect.name == "postgresql" else _FENCE_BOOK
    row = conn.execute(query, {"bot_id": bot_id, "symbol": symbol}).first()
    owner = None if row is None else row.job_id
    if job_id is not None and owner != job_id:
        raise FenceLost(f"runner state of bot {bot_id} is owned by job {owner}")
    return _book(row) if row is not None else load_book(conn, bot_id, symbol)


def save_book(conn: Connection, bot_id: str, symbol: str, book: Book, now: datetime) -> None:
    values = {"new_qty": book.qty, "avg": book.avg_price,
              "new_lots": [[q, str(p)] for q, p in book.lots], "realized": book.realized_pnl,
              "new_fees": book.fees, "at": now}
    if not conn.execute(_SAVE_BOOK, {"bot": bot_id, "sym": symbol, **values}).rowcount:
        conn.execute(positions.insert(), dict(
            id=new_id(), bot_id=bot_id, symbol=symbol, qty=book.qty, avg_price=book.avg_price,
            lots=values["new_lots"], realized_pnl=book.realized_pnl, fees=book.fees,
            updated_at=now))


def apply_fills(conn: Connection, bot_id: str, reports: Sequence[FillReport], *,
                source_type: str, entry_times: dict[str, datetime], now: datetime,
                known: Mapping[str, StoredOrder] | None = None,
                fresh_books: Mapping[str, Book] | None = None,
                new: bool = False) -> list[AppliedFill]:
    """Apply broker fills not applied before, in order; returns those applied now.
    `entry_times` maps a symbol to the open position's entry time (kept by the caller and
    updated here), for the trade log. `known`: orders as the caller holds them;
    `fresh_books`: positions read in this transaction; `new`: the caller knows none was
    applied before (they are inserted plainly: the UNIQUE fill_id still refuses a repeat)."""
    if not reports:
        return []
    books: dict[str, Book] = dict(fresh_books or {})
    touched: set[str] = set()
    current: dict[str, StoredOrder] = {}
    applied: list[AppliedFill] = []
    incoming: dict[str, tuple[FillReport, StoredOrder, Decimal]] = {}
    for report in reports:
        cid = report.client_order_id
        if report.fill_id in incoming:
            continue
        order = current.get(cid) or (known or {}).get(cid)
        if order is None or not order.id:
            order = current[cid] = _ours(conn, bot_id, cid, report.fill_id)
        fee = (get_instrument(report.symbol).commission_per_side * report.qty
               if report.fee is None else report.fee)
        incoming[report.fill_id] = (report, order, fee)
    # One statement inserts the fills not applied before and names them: fill_id is UNIQUE,
    # so those applied before are skipped, without reading the bot's ever-growing history.
    rows = [dict(id=new_id(), order_id=order.id, bot_id=bot_id, fill_id=fill_id,
                 side=report.side.value, qty=report.qty, price=report.price, fee=fee,
                 filled_at=report.at, created_at=now)
            for fill_id, (report, order, fee) in incoming.items()]
    if new:
        conn.execute(_INSERT_FILLS, rows[0] if len(rows) == 1 else rows)
        inserted = set(incoming)
    else:
        inserted = set(conn.execute(_NEW_FILLS[conn.dialect.name], rows).scalars())
    for fill_id, (report, order, fee) in incoming.items():
        if fill_id not in inserted:
            continue
        cid = report.client_order_id
        order = current.get(cid, order)
        instrument = get_instrument(report.symbol)
        order = _fill_order(conn, order, report, now) or _fill_order(
            conn, _ours(conn, bot_id, cid, report.fill_id), report, now)
        assert order is not None, "an order re-read in this transaction cannot move on"
        current[cid] = order
        symbol = report.symbol
        before = books[symbol] if symbol in books else load_book(conn, bot_id, symbol)
        book, closed = apply_fill(before, report.side, report.qty, report.price, fee,
                                  instrument.point_value)
        books[symbol] = book
        touched.add(symbol)
        closed_pnl = None
        if closed is not None:
            entry_fees = instrument.commission_per_side * closed.qty
            closed_pnl = closed.gross_pnl - fee * closed.qty / report.qty - entry_fees
            conn.execute(trade_logs.insert(), dict(
                id=new_id(), bot_id=bot_id, bot_instance_id=order.job_id or _any_job(conn, bot_id),
                source_type=source_type, symbol=symbol, side=closed.side,
                qty=closed.qty, entry_time=entry_times.get(symbol, report.at),
                exit_time=report.at, entry_price=closed.entry_price, exit_price=report.price,
                pnl=closed_pnl, fees=entry_fees + fee * closed.qty / report.qty,
                exit_fill_id=report.fill_id, is_invalid=False, created_at=now))
        if book.qty == 0:
            entry_times.pop(symbol, None)
        elif before.qty == 0 or (before.qty > 0) != (book.qty > 0):
            entry_times[symbol] = report.at
        applied.append(AppliedFill(report, book, closed_pnl, order))
    for symbol in touched:  # one write per position, however many fills moved it
        save_book(conn, bot_id, symbol, books[symbol], now)
    return applied


def _ours(conn: Connection, bot_id: str, client_order_id: str, fill_id: str) -> StoredOrder:
    row = conn.execute(_ORDER_OF, {"cid": client_order_id}).first()
    if row is None or row.bot_id != bot_id:
        raise LookupError(f"fill {fill_id} is for an order this bot never sent: "
                          f"{client_order_id}")
    return stored_order(row)


def _fill_order(conn: Connection, order: StoredOrder, report: FillReport,
                now: datetime) -> StoredOrder | None:
    """The order with this fill added, written only if the row still holds what `order`
    says it does; None when it moved on (another writer filled it meanwhile)."""
    filled = order.filled_qty + report.qty
    avg = report.price if order.avg_fill_price is None else (
        (order.avg_fill_price * order.filled_qty + report.price * report.qty) / filled)
    status = status_for_fill(order.qty, filled)
    moved = conn.execute(_FILL_ORDER, {
        "oid": order.id, "was_filled": order.filled_qty, "now_filled": filled, "avg": avg,
        "new_status": status.value, "boid": report.broker_order_id, "at": now}).rowcount
    if moved != 1:
        return None
    return replace(order, filled_qty=filled, avg_fill_price=avg, status=status)


def _any_job(conn: Connection, bot_id: str) -> str:
    """The bot's latest runner job: the instance a fill of a system order is booked to."""
    from botwarden.store.models import BotJob

    jobs = cast(sa.Table, BotJob.__table__)
    job_id = conn.execute(sa.select(jobs.c.id).where(jobs.c.bot_id == bot_id)
                          .order_by(jobs.c.created_at.desc()).limit(1)).scalar_one_or_none()
    if job_id is None:
        raise LookupError(f"bot {bot_id} has no job to book the trade to")
    return str(job_id)
