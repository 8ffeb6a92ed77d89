"""Fills into our book: each broker fill applied once, with the order's filled quantity, the
position (exact FIFO lots) and the trade log row, in the caller's transaction.

`apply_fills` keeps round trips few: the caller may pass the orders it already holds
(`known`) and the position it read with its fence (`fresh_books`). What it holds can be
stale only if another writer (a reconcile) touched the same order in between: the order's
update is guarded by the filled quantity it expects, and a miss re-reads the row and
applies the fill to what is really there.

`plan_new_fills` is the runner's bar path, for fills none of which was applied before (a
simulated broker's match): the same arithmetic (`_step`) on what the caller holds, the
statements kept for later (`FillPlan.write`, whose guarded updates fail loudly on a miss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from botwarden.store.hot_sql import HotStatement
from botwarden.trading.brokers.base import FillReport
from botwarden.trading.order_store import (
    FenceLost,
    StoredOrder,
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
_INSERT_FILLS = HotStatement(fills.insert())
_INSERT_TRADE = HotStatement(trade_logs.insert())
_FILL_ORDER = HotStatement(orders.update()
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
_FENCE_BOOKS = {"postgresql": HotStatement(_FENCE_BOOK.with_for_update(of=runner_states)),
                "sqlite": HotStatement(_FENCE_BOOK)}
_SAVE_BOOK = HotStatement(positions.update()
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


def fence_and_book(conn: Connection, bot_id: str, job_id: str | None, symbol: str) -> Book:
    """`order_store.check_fence` and the position of `symbol` as stored, in one query."""
    row = _FENCE_BOOKS[conn.dialect.name].first(conn, {"bot_id": bot_id, "symbol": symbol})
    owner = None if row is None else row.job_id
    if job_id is not None and owner != job_id:
        raise FenceLost(f"runner state of bot {bot_id} is owned by job {owner}")
    return _book(row) if row is not None else load_book(conn, bot_id, symbol)


def save_book(conn: Connection, bot_id: str, symbol: str, book: Book, now: datetime) -> None:
    values = {"new_qty": book.qty, "avg": book.avg_price,
              "new_lots": [[q, str(p)] for q, p in book.lots], "realized": book.realized_pnl,
              "new_fees": book.fees, "at": now}
    if not _SAVE_BOOK.execute(conn, {"bot": bot_id, "sym": symbol, **values}):
        conn.execute(positions.insert(), dict(
            id=new_id(), bot_id=bot_id, symbol=symbol, qty=book.qty, avg_price=book.avg_price,
            lots=values["new_lots"], realized_pnl=book.realized_pnl, fees=book.fees,
            updated_at=now))


@dataclass(frozen=True, slots=True)
class _Step:
    """One fill worked out: the order and the book after it, the statement values that
    record it (the order's update is guarded by the filled quantity it started from)."""

    order: StoredOrder
    order_values: dict[str, Any]
    book: Book
    closed_pnl: Decimal | None
    trade_row: dict[str, Any] | None  # bot_instance_id None: the bot's latest job's


def _step(bot_id: str, report: FillReport, order: StoredOrder, fee: Decimal, before: Book,
          entry_times: dict[str, datetime], source_type: str, now: datetime) -> _Step:
    """`report` applied to `order` and the position `before` (entry_times updated)."""
    instrument = get_instrument(report.symbol)
    filled = order.filled_qty + report.qty
    avg = report.price if order.avg_fill_price is None else (
        (order.avg_fill_price * order.filled_qty + report.price * report.qty) / filled)
    status = status_for_fill(order.qty, filled)
    values = {"oid": order.id, "was_filled": order.filled_qty, "now_filled": filled,
              "avg": avg, "new_status": status.value, "boid": report.broker_order_id,
              "at": now}
    book, closed = apply_fill(before, report.side, report.qty, report.price, fee,
                              instrument.point_value)
    symbol = report.symbol
    closed_pnl, trade_row = None, None
    if closed is not None:
        entry_fees = instrument.commission_per_side * closed.qty
        closed_pnl = closed.gross_pnl - fee * closed.qty / report.qty - entry_fees
        trade_row = dict(
            id=new_id(), bot_id=bot_id, bot_instance_id=order.job_id, source_type=source_type,
            symbol=symbol, side=closed.side, qty=closed.qty,
            entry_time=entry_times.get(symbol, report.at), exit_time=report.at,
            entry_price=closed.entry_price, exit_price=report.price, pnl=closed_pnl,
            fees=entry_fees + fee * closed.qty / report.qty, exit_fill_id=report.fill_id,
            is_invalid=False, created_at=now)
    if book.qty == 0:
        entry_times.pop(symbol, None)
    elif before.qty == 0 or (before.qty > 0) != (book.qty > 0):
        entry_times[symbol] = report.at
    order = replace(order, filled_qty=filled, avg_fill_price=avg, status=status)
    return _Step(order, values, book, closed_pnl, trade_row)


def _fee(report: FillReport) -> Decimal:
    return (get_instrument(report.symbol).commission_per_side * report.qty
            if report.fee is None else report.fee)


def _fill_row(bot_id: str, report: FillReport, order: StoredOrder, fee: Decimal,
              now: datetime) -> dict[str, Any]:
    return dict(id=new_id(), order_id=order.id, bot_id=bot_id, fill_id=report.fill_id,
                side=report.side.value, qty=report.qty, price=report.price, fee=fee,
                filled_at=report.at, created_at=now)


def _insert_trade(conn: Connection, bot_id: str, row: dict[str, Any]) -> None:
    if row["bot_instance_id"] is None:  # a system order's fill: booked to the latest job
        row = {**row, "bot_instance_id": _any_job(conn, bot_id)}
    _INSERT_TRADE.execute(conn, row)


@dataclass
class FillPlan:
    """New fills worked out from what the caller holds, to be written later (`write`), in
    one transaction: a runner's bar sends its orders first."""

    bot_id: str
    now: datetime
    applied: list[AppliedFill] = field(default_factory=list)
    fill_rows: list[dict[str, Any]] = field(default_factory=list)
    order_updates: list[dict[str, Any]] = field(default_factory=list)
    trade_rows: list[dict[str, Any]] = field(default_factory=list)
    books: dict[str, Book] = field(default_factory=dict)

    def write(self, conn: Connection) -> None:
        _INSERT_FILLS.execute(conn, self.fill_rows)
        for values in self.order_updates:
            if _FILL_ORDER.execute(conn, values) != 1:
                raise FenceLost(f"order {values['oid']} moved on before its fill was written")
        for row in self.trade_rows:
            _insert_trade(conn, self.bot_id, row)
        for symbol, book in self.books.items():
            save_book(conn, self.bot_id, symbol, book, self.now)


def plan_new_fills(bot_id: str, reports: Sequence[FillReport], *, source_type: str,
                   entry_times: dict[str, datetime], now: datetime,
                   known: Mapping[str, StoredOrder], books: Mapping[str, Book],
                   ) -> FillPlan | None:
    """Fills none of which was applied before (a simulated broker's match), worked out from
    the orders and positions the caller holds; None when an order is not among `known`."""
    if any(r.client_order_id not in known for r in reports):
        return None
    plan = FillPlan(bot_id, now)
    current: dict[str, StoredOrder] = {}
    seen: set[str] = set()
    for report in reports:
        if report.fill_id in seen:
            continue
        seen.add(report.fill_id)
        cid = report.client_order_id
        order = current.get(cid) or known[cid]
        fee = _fee(report)
        symbol = report.symbol
        before = plan.books.get(symbol) or books.get(symbol) or Book()
        step = _step(bot_id, report, order, fee, before, entry_times, source_type, now)
        current[cid] = step.order
        plan.fill_rows.append(_fill_row(bot_id, report, order, fee, now))
        plan.order_updates.append(step.order_values)
        if step.trade_row is not None:
            plan.trade_rows.append(step.trade_row)
        plan.books[symbol] = step.book
        plan.applied.append(AppliedFill(report, step.book, step.closed_pnl, step.order))
    return plan


def apply_fills(conn: Connection, bot_id: str, reports: Sequence[FillReport], *,
                source_type: str, entry_times: dict[str, datetime], now: datetime,
                known: Mapping[str, StoredOrder] | None = None,
                fresh_books: Mapping[str, Book] | None = None) -> list[AppliedFill]:
    """Apply broker fills not applied before, in order; returns those applied now.
    `entry_times` maps a symbol to the open position's entry time (kept by the caller and
    updated here), for the trade log. `known`: orders as the caller holds them;
    `fresh_books`: positions read in this transaction."""
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
        incoming[report.fill_id] = (report, order, _fee(report))
    # One statement inserts the fills not applied before and names them: fill_id is UNIQUE,
    # so those applied before are skipped, without reading the bot's ever-growing history.
    inserted = set(conn.execute(_NEW_FILLS[conn.dialect.name], [
        _fill_row(bot_id, report, order, fee, now)
        for report, order, fee in incoming.values()]).scalars())
    for fill_id, (report, order, fee) in incoming.items():
        if fill_id not in inserted:
            continue
        cid, symbol = report.client_order_id, report.symbol
        order = current.get(cid, order)
        before = books[symbol] if symbol in books else load_book(conn, bot_id, symbol)
        entered = dict(entry_times)
        step = _step(bot_id, report, order, fee, before, entry_times, source_type, now)
        if _FILL_ORDER.execute(conn, step.order_values) != 1:
            # Another writer filled it meanwhile: apply the fill to the row as it is now
            # (re-read in this transaction, so it cannot move on again).
            entry_times.clear()
            entry_times.update(entered)
            step = _step(bot_id, report, _ours(conn, bot_id, cid, fill_id), fee, before,
                         entry_times, source_type, now)
            _FILL_ORDER.execute(conn, step.order_values)
        current[cid] = step.order
        books[symbol] = step.book
        touched.add(symbol)
        if step.trade_row is not None:
            _insert_trade(conn, bot_id, step.trade_row)
        applied.append(AppliedFill(report, step.book, step.closed_pnl, step.order))
    for symbol in touched:  # one write per position, however many fills moved it
        save_book(conn, bot_id, symbol, books[symbol], now)
    return applied


def _ours(conn: Connection, bot_id: str, client_order_id: str, fill_id: str) -> StoredOrder:
    row = conn.execute(_ORDER_OF, {"cid": client_order_id}).first()
    if row is None or row.bot_id != bot_id:
        raise LookupError(f"fill {fill_id} is for an order this bot never sent: "
                          f"{client_order_id}")
    return stored_order(row)


def _any_job(conn: Connection, bot_id: str) -> str:
    """The bot's latest runner job: the instance a fill of a system order is booked to."""
    from botwarden.store.models import BotJob

    jobs = cast(sa.Table, BotJob.__table__)
    job_id = conn.execute(sa.select(jobs.c.id).where(jobs.c.bot_id == bot_id)
                          .order_by(jobs.c.created_at.desc()).limit(1)).scalar_one_or_none()
    if job_id is None:
        raise LookupError(f"bot {bot_id} has no job to book the trade to")
    return str(job_id)
