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

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoResultFound

from botwarden.domain.orders import OPEN, can_transition
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.ids import new_id
from botwarden.store.db import write_transaction
from botwarden.store.hot_sql import HotStatement
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
_FENCE_HOT = {"postgresql": HotStatement(_FENCE.with_for_update()), "sqlite": HotStatement(_FENCE)}
_BOT_GATE = (
    sa.select(bots.c.kill_state, bots.c.trading_state, bots.c.stage, bots.c.is_trading_enabled,
              bots.c.account_id, accounts.c.kill_switch_engaged, accounts.c.max_contracts,
              accounts.c.starting_capital)
    .join(accounts, accounts.c.id == bots.c.account_id)
    .where(bots.c.id == sa.bindparam("bot_id")))


_BOT_GATE_HOT = HotStatement(_BOT_GATE)


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
    avg_fill_price: Decimal | None = None


def stored_order(row: Any) -> StoredOrder:
    return StoredOrder(row.id, row.client_order_id, row.job_id, row.symbol, Side(row.side),
                       row.qty, OrderType(row.order_type), OrderStatus(row.status),
                       row.filled_qty, row.limit_price, row.stop_price, row.reduce_only,
                       row.parent_client_order_id, row.created_at, row.avg_fill_price)


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
    row = _FENCE_HOT[conn.dialect.name].first(conn, {"bot_id": bot_id})
    owner = None if row is None else row.job_id
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
    row = _BOT_GATE_HOT.first(conn, {"bot_id": bot_id})
    if row is None:
        raise NoResultFound(f"no bot {bot_id}")
    return row


# The gate and the fence in one round trip (an intent's transaction starts with both).
_GATE_FENCED = (
    sa.select(*_BOT_GATE.selected_columns, runner_states.c.job_id.label("fence_owner"))
    .select_from(bots.join(accounts, accounts.c.id == bots.c.account_id)
                 .join(runner_states, runner_states.c.bot_id == bots.c.id))
    .where(bots.c.id == sa.bindparam("bot_id")))
# On PostgreSQL the bot's row is locked too: a kill (an UPDATE of that row) waits for an
# intent being judged to commit, and an intent judged after the kill's UPDATE waits for it
# and sees the bot killed; otherwise an intent read just before a kill could commit after it.
_GATE_FENCED_LOCKED = _GATE_FENCED.with_for_update(of=[runner_states, bots])
_GATE_HOT = {"postgresql": HotStatement(_GATE_FENCED_LOCKED), "sqlite": HotStatement(_GATE_FENCED)}


def fenced_gate(conn: Connection, bot_id: str, job_id: str | None) -> Any:
    """`check_fence` then `bot_gate`, in one query when there is a fence to check."""
    if job_id is None:
        check_fence(conn, bot_id, None)
        return bot_gate(conn, bot_id)
    row = _GATE_HOT[conn.dialect.name].first(conn, {"bot_id": bot_id})
    if row is None or row.fence_owner != job_id:
        owner = None if row is None else row.fence_owner
        raise FenceLost(f"runner state of bot {bot_id} is owned by job {owner}")
    return row


_TRANSITION = HotStatement(
    orders.update()
    .where(orders.c.client_order_id == sa.bindparam("cid"),
           orders.c.status.in_([sa.bindparam("from_1"), sa.bindparam("from_2")]))
    .values(status=sa.bindparam("new_status"),
            broker_order_id=sa.func.coalesce(sa.bindparam("boid"), orders.c.broker_order_id),
            updated_at=sa.bindparam("at")))
# What each quick transition may start from (PENDING -> SENT -> WORKING in one step): two
# statuses each, the statement's two parameters.
QUICK_TRANSITIONS = {OrderStatus.WORKING: (OrderStatus.PENDING, OrderStatus.SENT),
           OrderStatus.CANCELED: (OrderStatus.WORKING, OrderStatus.PARTIALLY_FILLED)}


def record_transition(conn: Connection, client_order_id: str, status: OrderStatus,
                      broker_order_id: str | None, now: datetime) -> bool:
    """An acknowledgement (-> WORKING) or a cancel of a working order (-> CANCELED) in one
    statement, the path of nearly every order; False when the row was not in a state that
    leads there (then settle it the long way, `set_status`)."""
    first, second = QUICK_TRANSITIONS[status]
    return _TRANSITION.execute(conn, {
        "cid": client_order_id, "boid": broker_order_id, "new_status": status.value,
        "from_1": first.value, "from_2": second.value, "at": now}) == 1


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


_INSERT_IF_ABSENT = {
    name: dialect.insert(orders).on_conflict_do_nothing(
        index_elements=[orders.c.client_order_id]).returning(orders.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}


_INSERT_TRACE = HotStatement(traces.insert())
_INSERT_ORDER = orders.insert()
_INSERT_ORDERS = HotStatement(_INSERT_ORDER)


def order_row(bot_id: str, job_id: str | None, order: NewOrder, *, broker: str, mode: str,
               now: datetime, status: OrderStatus, reject_code: str | None) -> dict[str, Any]:
    return dict(
        id=new_id(), bot_id=bot_id, job_id=job_id, client_order_id=order.client_order_id,
        broker=broker, mode=mode, symbol=order.symbol, side=order.side.value, qty=order.qty,
        order_type=order.order_type.value, limit_price=order.limit_price,
        stop_price=order.stop_price, status=status.value, filled_qty=0,
        reduce_only=order.reduce_only, reason=order.reason, reject_code=reject_code,
        parent_client_order_id=order.parent_client_order_id, created_at=now, updated_at=now)


def insert_order(conn: Connection, bot_id: str, job_id: str | None, order: NewOrder, *,
                 broker: str, mode: str, now: datetime,
                 status: OrderStatus = OrderStatus.PENDING, reject_code: str | None = None,
                 ) -> str:
    row = order_row(bot_id, job_id, order, broker=broker, mode=mode, now=now, status=status,
                     reject_code=reject_code)
    conn.execute(_INSERT_ORDER, row)
    return str(row["id"])


_INSERT_IF_ABSENT = {
    name: dialect.insert(orders).on_conflict_do_nothing(
        index_elements=[orders.c.client_order_id]).returning(orders.c.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))}


def insert_order_if_absent(conn: Connection, bot_id: str, job_id: str | None, order: NewOrder,
                           *, broker: str, mode: str, now: datetime,
                           status: OrderStatus) -> str | None:
    """The new row's id; None, writing nothing, when the client order id is stored already."""
    row = order_row(bot_id, job_id, order, broker=broker, mode=mode, now=now, status=status,
                     reject_code=None)
    found = conn.execute(_INSERT_IF_ABSENT[conn.dialect.name], row).scalar_one_or_none()
    return None if found is None else str(found)


def trace_row(bot_id: str, job_id: str | None, *, kind: str, bar_time: datetime | None,
              decision: str, reason_code: str | None, detail: dict[str, Any],
              now: datetime) -> dict[str, Any]:
    return dict(id=new_id(), bot_id=bot_id, job_id=job_id, kind=kind, bar_time=bar_time,
                decision=decision, reason_code=reason_code, detail=detail, created_at=now)


def insert_intents(conn: Connection, trace_rows: list[dict[str, Any]],
                   order_rows: list[dict[str, Any]]) -> None:
    """Decision traces and order rows (`trace_row`, `order_row`), one statement each."""
    for statement, rows in ((_INSERT_TRACE, trace_rows), (_INSERT_ORDERS, order_rows)):
        if rows:
            statement.send(conn, rows[0] if len(rows) == 1 else rows)


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
    return [stored_order(r) for r in rows]


def get_order(conn: Connection, client_order_id: str) -> StoredOrder | None:
    row = conn.execute(sa.select(orders).where(orders.c.client_order_id == client_order_id)
                       ).first()
    return None if row is None else stored_order(row)


def recent_orders(conn: Connection, bot_id: str, limit: int = 200) -> list[StoredOrder]:
    rows = conn.execute(sa.select(orders).where(orders.c.bot_id == bot_id)
                        .order_by(orders.c.created_at.desc()).limit(limit))
    return [stored_order(r) for r in rows]


def applied_fill_ids(conn: Connection, bot_id: str) -> frozenset[str]:
    return frozenset(conn.execute(sa.select(fills.c.fill_id).where(fills.c.bot_id == bot_id))
                     .scalars())
