"""Reconciliation with the broker: run at every runner start and restart, on
POST /api/bots/{id}/reconcile and by the supervisor for DEGRADED runners.

1. Intents still PENDING or UNRESOLVED are settled by asking the broker for their client
   ids (an id the broker never saw is sent again under the same id: nothing is duplicated;
   a runner restarting on a simulated broker sends those itself, see `reconcile`). Exits
   the broker opened for a bracket of ours while we were not looking are adopted.
2. Both sides are compared by the pure `domain.reconcile.diff`.
3. What can be fixed is fixed: missed fills applied once, broker statuses adopted, orders
   the broker never received rejected, unknown working broker orders cancelled.
4. What cannot (a fill for an order we never sent, a position that still differs) is a
   RECONCILE_MISMATCH kill: the bot is QUARANTINED and only a human with 2FA brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.domain.kill import KillMode, KillState, TriggerCode
from botwarden.domain.orders import OPEN
from botwarden.domain.reconcile import ActionKind, OurOrder, ReconcileReport, diff
from botwarden.domain.trading import OrderStatus, Side
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot
from botwarden.trading import order_store as store
from botwarden.trading.brokers.base import (
    PROFIT_TARGET_SUFFIX,
    STOP_LOSS_SUFFIX,
    BrokerError,
    FillReport,
    OrderReport,
    bracket_ids,
)
from botwarden.trading.order_manager import OrderManager


@dataclass(frozen=True, slots=True)
class ReconcileOutcome:
    report: ReconcileReport
    taken: tuple[dict[str, Any], ...]
    position: int
    broker_position: int
    killed: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "drift_found": self.report.drift,
            "fixable": self.report.fixable,
            "actions": list(self.taken),
            "final_state": {"position": self.position, "broker_position": self.broker_position,
                            "in_agreement": self.position == self.broker_position
                            and not self.killed},
            "killed": self.killed,
        }


def reconcile(engine: Engine, manager: OrderManager, symbol: str, *, actor: str,
              trace_id: str | None = None, kill_on_mismatch: bool = True,
              resend: bool = True) -> ReconcileOutcome:
    """`resend=False`: intents the broker never received stay PENDING for the caller to
    send (a runner restarting on a simulated broker sends them once the broker has seen the
    bar they were decided on again; sent now, they could fill on that very bar)."""
    manager.load(symbol)
    manager.resolve_open(resend=resend)
    unsent = set() if resend else {
        o.client_order_id for o in manager.open.values()
        if o.status in (OrderStatus.PENDING, OrderStatus.UNRESOLVED)}
    broker = manager.broker
    broker_open = broker.open_orders(symbol)
    broker_fills = [f for f in broker.fills() if f.symbol == symbol]
    _adopt_bracket_exits(manager, broker_open, broker_fills)
    with engine.connect() as conn:
        ours_rows = [o for o in store.recent_orders(conn, manager.bot_id, limit=500)
                     if o.client_order_id not in unsent]
        applied = store.applied_fill_ids(conn, manager.bot_id)
    reports: dict[str, OrderReport] = {r.client_order_id: r for r in broker_open}
    for row in ours_rows:
        if row.status in OPEN and row.client_order_id not in reports:
            found = broker.query_order(row.client_order_id)
            if found is not None:
                reports[found.client_order_id] = found
    by_fill_id = {f.fill_id: f for f in broker_fills}
    ours = [OurOrder(o.client_order_id, o.status, o.qty, o.filled_qty) for o in ours_rows]
    known_ids = {o.client_order_id for o in ours_rows}
    # Fills of orders older than our window are not "unknown orders": check them one by one.
    for fill in broker_fills:
        if fill.client_order_id not in known_ids and fill.fill_id not in applied:
            with engine.connect() as conn:
                older = store.get_order(conn, fill.client_order_id)
            if older is not None:
                ours.append(OurOrder(older.client_order_id, older.status, older.qty,
                                     older.filled_qty))
                known_ids.add(older.client_order_id)
    sides = {o.client_order_id: (1 if o.side is Side.BUY else -1) for o in ours_rows}
    for fill in broker_fills:
        sides.setdefault(fill.client_order_id, 1 if fill.side is Side.BUY else -1)
    report = diff(ours, manager.position(symbol), applied,
                  [r.as_broker_order() for r in reports.values()],
                  [f.as_broker_fill() for f in broker_fills],
                  broker.position(symbol).qty, sides)
    taken = [_apply(manager, action, by_fill_id, reports) for action in report.actions]
    manager.load(symbol)
    position = manager.position(symbol)
    broker_position = broker.position(symbol).qty
    mismatch = any(a.kind is ActionKind.MISMATCH for a in report.actions) \
        or position != broker_position
    killed = False
    if mismatch and kill_on_mismatch:
        killed = _quarantine(engine, manager.bot_id, report, actor, trace_id)
    return ReconcileOutcome(report, tuple(taken), position, broker_position, killed)


def _adopt_bracket_exits(manager: OrderManager, broker_open: list[OrderReport],
                         broker_fills: list[FillReport]) -> None:
    """A bracket's exits are opened by the broker when their entry fills. A runner that died
    between that fill and recording them left them unknown to us: they are ours all the same
    (their parent is our entry), adopted before the diff, never cancelled as strangers; so is
    a sibling the broker has cancelled since (one-cancels-other), for the record."""
    exits = {r.client_order_id for r in broker_open if r.parent_client_order_id}
    exits |= {f.client_order_id for f in broker_fills
              if f.client_order_id.endswith((STOP_LOSS_SUFFIX, PROFIT_TARGET_SUFFIX))}
    parents = {c.removesuffix(STOP_LOSS_SUFFIX).removesuffix(PROFIT_TARGET_SUFFIX)
               for c in exits}
    legs = {leg: parent for parent in parents for leg in bracket_ids(parent)}
    if not legs:
        return
    ids = store.orders.c.client_order_id
    with manager.engine.connect() as conn:
        known = set(conn.execute(sa.select(ids).where(
            store.orders.c.bot_id == manager.bot_id, ids.in_(parents | set(legs)))).scalars())
    for leg, parent in sorted(legs.items()):
        if parent in known and leg not in known:
            manager.adopt(leg)


def _apply(manager: OrderManager, action: Any, fills: dict[str, Any],
           reports: dict[str, OrderReport]) -> dict[str, Any]:
    done = {"kind": action.kind.value, "client_order_id": action.client_order_id,
            "detail": action.detail, "applied": False}
    try:
        if action.kind is ActionKind.APPLY_FILL and action.fill is not None:
            done["applied"] = bool(manager.on_fills([fills[action.fill.fill_id]]))
        elif action.kind is ActionKind.ADOPT_STATUS and action.client_order_id in reports:
            manager.adopt_report(reports[action.client_order_id])
            done["applied"] = True
        elif action.kind is ActionKind.MARK_REJECTED and action.client_order_id:
            with write_transaction(manager.engine) as conn:
                done["applied"] = store.set_status(
                    conn, action.client_order_id, OrderStatus.REJECTED, now=manager.clock(),
                    reject_code="NOT_AT_BROKER", reason="the broker has no record of it")
        elif action.kind is ActionKind.CANCEL_AT_BROKER and action.client_order_id:
            done["applied"] = manager.broker.cancel(action.client_order_id) is not None
    except BrokerError as exc:
        done["error"] = f"{exc.code}: {exc.message}"
    return done


def _quarantine(engine: Engine, bot_id: str, report: ReconcileReport, actor: str,
                trace_id: str | None) -> bool:
    from botwarden.services import kill as kill_service

    with Session(engine) as session:
        bot = session.get(Bot, bot_id, with_for_update=True)
        if bot is None or bot.kill_state in (KillState.QUARANTINED.value,
                                             KillState.HARD_KILLED.value):
            return False
        reasons = [a.detail for a in report.actions if a.kind is ActionKind.MISMATCH]
        kill_service.kill_bot(
            session, bot, mode=KillMode.HARD, trigger=TriggerCode.RECONCILE_MISMATCH,
            reason="; ".join(reasons) or "position differs from the broker's", actor=actor,
            trace_id=trace_id, escalate=True,
            metadata={"expected_position": report.expected_position,
                      "broker_position": report.broker_position})
        session.commit()
    return True
