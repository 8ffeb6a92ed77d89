"""The runner's side of the book in the database: order intents, their statuses, fills,
positions and the trade log. Each function is one transaction (or runs inside the caller's).

Exactly-once, our half:
- an intent is an `orders` row with a client order id fixed before anything is sent
  (UNIQUE in the database), written in the same transaction as its decision trace, under
  the runner's fence (runner_states.job_id: a replaced runner can no longer write);
- a fill is applied once: `fills.fill_id` is UNIQUE and the fill, the order's filled
  quantity, the position and the trade log row are written in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from botwarden.domain.instruments import get_instrument
from botwarden.domain.ledger import Book, apply_fill
from botwarden.domain.orders import OPEN, can_transition, status_for_fill
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.ids import new_id
from botwarden.store.db import write_transaction
from botwarden.store.models import (
    Account,
    Bot,
    Fill,
    Order,
    Position,
    RunnerState,
    Trace,
    TradeLog,
)
from botwarden.trading.brokers.base import FillReport

orders = cast(sa.Table, Order.__table__)
fills = cast(sa.Table, Fill.__table__)
positions = cast(sa.Table, Position.__table__)
trade_logs = cast(sa.Table, TradeLog.__table__)
traces = cast(sa.Table, Trace.__table__)
runner_states = cast(sa.Table, RunnerState.__table__)
bots = cast(sa.Table, Bot.__table__)
accounts = cast(sa.Table, Account.__table__)


# Hot-path inserts pass their row as parameters to a bare `table.insert()` rather than
# `.values(...)`: the statement is then the same object every time and its compiled form is
# reused, where `.values()` builds and keys a new statement per call (about 0.2 ms each).


_FENCE = sa.select(runner_states.c.job_id).where(runner_states.c.bot_id == sa.bindparam("bot_id"))
_FENCE_LOCKED = _FENCE.with_for_update()
_BOT_GATE = (
    sa.select(bots.c.kill_state, bots.c.trading_state, bots.c.stage, bots.c.is_trading_enabled,
              bots.c.account_id, accounts.c.kill_switch_engaged, accounts.c.max_contracts,
              accounts.c.starting_capital)
    .join(accounts, accounts.c.id == bots.c.account_id)
    .where(bots.c.id == sa.bindparam("bot_id")))


class FenceLost(Exception):
    """Another runner took over this bot (runner_states.job_id changed): stop writing."""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    id: str
    client_order_id: str
    job_id: str | None
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    status: OrderStatus
    filled_qty: int
    limit_price: Decimal | None
    stop_price: Decimal | None
    reduce_only: bool
    parent_client_order_id: str | None
    created_at: datetime


def _stored(row: Any) -> StoredOrder:
    return StoredOrder(row.id, row.client_order_id, row.job_id, row.symbol, Side(row.side),
                       row.qty, OrderType(row.order_type), OrderStatus(row.status),
                       row.filled_qty, row.limit_price, row.stop_price, row.reduce_only,
                       row.parent_client_order_id, row.created_at)


@dataclass(frozen=True, slots=True)
class NewOrder:
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    reduce_only: bool = False
    reason: str | None = None
    parent_client_order_id: str | None = None


def check_fence(conn: Connection, bot_id: str, job_id: str | None) -> None:
    """Raise FenceLost unless `job_id` still owns the bot's runner state (None: a system
    writer such as the kill engine or a reconcile, which needs no fence). On PostgreSQL the
    row is locked, so the bot's writers (its runner, a reconcile, the kill engine) take
    turns; SQLite's write transactions already do."""
    query = _FENCE_LOCKED if conn.dialect.name == "postgresql" else _FENCE
    owner = conn.execute(query, {"bot_id": bot_id}).scalar_one_or_none()
    if job_id is not None and owner != job_id:
        raise FenceLost(f"runner state of bot {bot_id} is owned by job {owner}")


def claim_fence(engine: Engine, bot_id: str, job_id: str, now: datetime) -> dict[str, Any]:
    """Make `job_id` the bot's runner (the old one's writes fail from now on). Returns the
    stored state and cursor to resume from."""
    with write_transaction(engine) as conn:
        row = conn.execute(sa.select(runner_states).where(runner_states.c.bot_id == bot_id)
                           ).mappings().first()
        if row is None:
            conn.execute(runner_states.insert().values(bot_id=bot_id, job_id=job_id, state={},
                                                       updated_at=now))
            return {"state": {}, "last_bar_time": None}
        conn.execute(runner_states.update().where(runner_states.c.bot_id == bot_id)
                     .values(job_id=job_id, updated_at=now))
        return {"state": dict(row["state"] or {}), "last_bar_time": row["last_bar_time"]}


def save_runner_state(conn: Connection, bot_id: str, job_id: str | None, *, state: dict[str, Any],
                      last_bar_time: datetime, last_price: Decimal, bar_wall_seconds: float,
                      now: datetime) -> None:
    values = {"state": state, "last_bar_time": last_bar_time, "last_price": last_price,
              "bar_wall_seconds": bar_wall_seconds, "updated_at": now}
    query = runner_states.update().where(runner_states.c.bot_id == bot_id)
    if job_id is not None:
        query = query.where(runner_states.c.job_id == job_id)
    if conn.execute(query.values(**values)).rowcount != 1:
        raise FenceLost(f"runner state of bot {bot_id} is no longer ours")


def bot_gate(conn: Connection, bot_id: str) -> Any:
    """The bot's kill and trading state and stage, its account's kill switch and cap."""
    return conn.execute(_BOT_GATE, {"bot_id": bot_id}).one()


def account_open_contracts(conn: Connection, account_id: str) -> int:
    """Contracts held plus entries working, over every bot of the account. On PostgreSQL the
    account row is locked first, so concurrent intents of its bots queue here."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
    held = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(sa.func.abs(positions.c.qty)), 0))
        .join(bots, bots.c.id == positions.c.bot_id).where(bots.c.account_id == account_id)
    ).scalar_one()
    working = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(orders.c.qty - orders.c.filled_qty), 0))
        .join(bots, bots.c.id == orders.c.bot_id)
        .where(bots.c.account_id == account_id, orders.c.reduce_only.is_(False),
               orders.c.parent_client_order_id.is_(None),
               orders.c.status.in_([s.value for s in OPEN]))
    ).scalar_one()
    return int(held) + int(working)


def insert_order(conn: Connection, bot_id: str, job_id: str | None, order: NewOrder, *,
                 broker: str, mode: str, now: datetime,
                 status: OrderStatus = OrderStatus.PENDING, reject_code: str | None = None,
                 ) -> str:
    order_id = new_id()
    conn.execute(orders.insert(), dict(
        id=order_id, bot_id=bot_id, job_id=job_id, client_order_id=order.client_order_id,
        broker=broker, mode=mode, symbol=order.symbol, side=order.side.value, qty=order.qty,
        order_type=order.order_type.value, limit_price=order.limit_price,
        stop_price=order.stop_price, status=status.value, filled_qty=0,
        reduce_only=order.reduce_only, reason=order.reason, reject_code=reject_code,
        parent_client_order_id=order.parent_client_order_id, created_at=now, updated_at=now))
    return order_id


def insert_trace(conn: Connection, bot_id: str, job_id: str | None, *, kind: str,
                 bar_time: datetime | None, decision: str, reason_code: str | None,
                 detail: dict[str, Any], now: datetime) -> None:
    conn.execute(traces.insert(), dict(
        id=new_id(), bot_id=bot_id, job_id=job_id, kind=kind, bar_time=bar_time,
        decision=decision, reason_code=reason_code, detail=detail, created_at=now))


def set_status(conn: Connection, client_order_id: str, status: OrderStatus, *, now: datetime,
               broker_order_id: str | None = None, reject_code: str | None = None,
               reason: str | None = None) -> bool:
    """Move an order to `status` when the order state machine allows it; False otherwise."""
    current = conn.execute(sa.select(orders.c.status).where(
        orders.c.client_order_id == client_order_id)).scalar_one_or_none()
    if current is None or not can_transition(OrderStatus(current), status):
        return False
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if broker_order_id is not None:
        values["broker_order_id"] = broker_order_id
    if reject_code is not None:
        values["reject_code"] = reject_code
    if reason is not None:
        values["reason"] = reason
    conn.execute(orders.update().where(orders.c.client_order_id == client_order_id,
                                       orders.c.status == current).values(**values))
    return True


def open_orders(conn: Connection, bot_id: str) -> list[StoredOrder]:
    rows = conn.execute(sa.select(orders).where(
        orders.c.bot_id == bot_id, orders.c.status.in_([s.value for s in OPEN]))
        .order_by(orders.c.created_at, orders.c.client_order_id))
    return [_stored(r) for r in rows]


def get_order(conn: Connection, client_order_id: str) -> StoredOrder | None:
    row = conn.execute(sa.select(orders).where(orders.c.client_order_id == client_order_id)
                       ).first()
    return None if row is None else _stored(row)


def recent_orders(conn: Connection, bot_id: str, limit: int = 200) -> list[StoredOrder]:
    rows = conn.execute(sa.select(orders).where(orders.c.bot_id == bot_id)
                        .order_by(orders.c.created_at.desc()).limit(limit))
    return [_stored(r) for r in rows]


def applied_fill_ids(conn: Connection, bot_id: str) -> frozenset[str]:
    return frozenset(conn.execute(sa.select(fills.c.fill_id).where(fills.c.bot_id == bot_id))
                     .scalars())


def load_book(conn: Connection, bot_id: str, symbol: str) -> Book:
    row = conn.execute(sa.select(positions).where(positions.c.bot_id == bot_id,
                                                  positions.c.symbol == symbol)).first()
    if row is None:
        return Book()
    lots = tuple((int(q), Decimal(str(p))) for q, p in (row.lots or []))
    return Book(row.qty, lots, row.realized_pnl, row.fees)


def _save_book(conn: Connection, bot_id: str, symbol: str, book: Book, now: datetime) -> None:
    values = {"qty": book.qty, "avg_price": book.avg_price,
              "lots": [[q, str(p)] for q, p in book.lots], "realized_pnl": book.realized_pnl,
              "fees": book.fees, "updated_at": now}
    changed = conn.execute(positions.update().where(
        positions.c.bot_id == bot_id, positions.c.symbol == symbol).values(**values)).rowcount
    if not changed:
        conn.execute(positions.insert(), dict(id=new_id(), bot_id=bot_id, symbol=symbol,
                                               **values))


@dataclass(frozen=True, slots=True)
class AppliedFill:
    fill: FillReport
    book: Book
    closed_pnl: Decimal | None  # net of both sides' fees, when the fill closed a trade


def apply_fills(conn: Connection, bot_id: str, reports: Sequence[FillReport], *,
                source_type: str, entry_times: dict[str, datetime], now: datetime,
                ) -> list[AppliedFill]:
    """Apply broker fills not applied before, in order; returns those applied now.
    `entry_times` maps a symbol to the open position's entry time (kept by the caller and
    updated here), for the trade log."""
    # Only the incoming ids are looked up: a bot's whole fill history grows without end.
    done = frozenset(conn.execute(sa.select(fills.c.fill_id).where(
        fills.c.fill_id.in_([r.fill_id for r in reports]))).scalars()) if reports else frozenset()
    applied: list[AppliedFill] = []
    for report in reports:
        if report.fill_id in done:
            continue
        order = conn.execute(sa.select(orders).where(
            orders.c.client_order_id == report.client_order_id)).first()
        if order is None or order.bot_id != bot_id:
            raise LookupError(f"fill {report.fill_id} is for an order this bot never sent: "
                              f"{report.client_order_id}")
        instrument = get_instrument(report.symbol)
        fee = instrument.commission_per_side * report.qty if report.fee is None else report.fee
        conn.execute(fills.insert(), dict(
            id=new_id(), order_id=order.id, bot_id=bot_id, fill_id=report.fill_id,
            side=report.side.value, qty=report.qty, price=report.price, fee=fee,
            filled_at=report.at, created_at=now))
        filled = order.filled_qty + report.qty
        avg = report.price if order.avg_fill_price is None else (
            (order.avg_fill_price * order.filled_qty + report.price * report.qty) / filled)
        status = status_for_fill(order.qty, filled)
        conn.execute(orders.update().where(orders.c.id == order.id).values(
            filled_qty=filled, avg_fill_price=avg, status=status.value,
            broker_order_id=order.broker_order_id or report.broker_order_id, updated_at=now))
        before = load_book(conn, bot_id, report.symbol)
        book, closed = apply_fill(before, report.side, report.qty, report.price, fee,
                                  instrument.point_value)
        _save_book(conn, bot_id, report.symbol, book, now)
        closed_pnl = None
        if closed is not None:
            entry_fees = instrument.commission_per_side * closed.qty
            closed_pnl = closed.gross_pnl - fee * closed.qty / report.qty - entry_fees
            conn.execute(trade_logs.insert(), dict(
                id=new_id(), bot_id=bot_id, bot_instance_id=order.job_id or _any_job(conn, bot_id),
                source_type=source_type, symbol=report.symbol, side=closed.side,
                qty=closed.qty, entry_time=entry_times.get(report.symbol, report.at),
                exit_time=report.at, entry_price=closed.entry_price, exit_price=report.price,
                pnl=closed_pnl, fees=entry_fees + fee * closed.qty / report.qty,
                exit_fill_id=report.fill_id, is_invalid=False, created_at=now))
        if book.qty == 0:
            entry_times.pop(report.symbol, None)
        elif before.qty == 0 or (before.qty > 0) != (book.qty > 0):
            entry_times[report.symbol] = report.at
        applied.append(AppliedFill(report, book, closed_pnl))
    return applied


def _any_job(conn: Connection, bot_id: str) -> str:
    """The bot's latest runner job: the instance a fill of a system order is booked to."""
    from botwarden.store.models import BotJob

    jobs = cast(sa.Table, BotJob.__table__)
    job_id = conn.execute(sa.select(jobs.c.id).where(jobs.c.bot_id == bot_id)
                          .order_by(jobs.c.created_at.desc()).limit(1)).scalar_one_or_none()
    if job_id is None:
        raise LookupError(f"bot {bot_id} has no job to book the trade to")
    return str(job_id)
