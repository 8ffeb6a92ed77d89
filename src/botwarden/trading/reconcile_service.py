"""Reconciliation with the broker: run at every runner start and restart, on
POST /api/bots/{id}/reconcile and by the supervisor for DEGRADED runners.

1. Intents still PENDING or UNRESOLVED are settled by asking the broker for their client
   ids (an id the broker never saw is sent again under the same id: nothing is duplicated).
2. Both sides are compared by the pure `domain.reconcile.diff`.
3. What can be fixed is fixed: missed fills applied once, broker statuses adopted, orders
   the broker never received rejected, unknown working broker orders cancelled.
4. What cannot (a fill for an order we never sent, a position that still differs) is a
   RECONCILE_MISMATCH kill: the bot is QUARANTINED and only a human with 2FA brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.domain.kill import KillMode, KillState, TriggerCode
from botwarden.domain.orders import OPEN
from botwarden.domain.reconcile import ActionKind, OurOrder, ReconcileReport, diff
from botwarden.domain.trading import OrderStatus, Side
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot
from botwarden.trading import order_store as store
from botwarden.trading.brokers.base import BrokerError, OrderReport
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
              trace_id: str | None = None, kill_on_mismatch: bool = True) -> ReconcileOutcome:
    manager.load(symbol)
    manager.resolve_open()
    broker = manager.broker
    with engine.connect() as conn:
        ours_rows = store.recent_orders(conn, manager.bot_id, limit=500)
        applied = store.applied_fill_ids(conn, manager.bot_id)
    reports: dict[str, OrderReport] = {r.client_order_id: r for r in broker.open_orders(symbol)}
    for row in ours_rows:
        if row.status in OPEN and row.client_order_id not in reports:
            found = broker.query_order(row.client_order_id)
            if found is not None:
                reports[found.client_order_id] = found
    broker_fills = [f for f in broker.fills() if f.symbol == symbol]
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
