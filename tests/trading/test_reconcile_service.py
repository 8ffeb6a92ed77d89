"""Reconcile: fixable drift is fixed and reported; a drift it cannot explain quarantines."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.trading import OrderType, Side
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, KillEvent, Position
from botwarden.trading.order_store import NewOrder
from botwarden.trading.reconcile_jobs import reconcile_bot
from tests.trading.runner_support import (
    NOW,
    flat_bar,
    make_bot,
    paper_manager,
    risk_context,
)


def test_a_missed_fill_is_applied_once_and_reported(engine: Engine, settings: Settings) -> None:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    placed = manager.place(NewOrder("rc-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    assert placed.status is not None
    manager.broker.on_bar("MES", flat_bar(NOW, 5000.0))  # fills at the broker; we never hear it
    report = reconcile_bot(engine, settings, bot_id, actor="test")
    assert report["drift_found"] is True
    assert [a["kind"] for a in report["actions"]].count("APPLY_FILL") == 1
    assert report["final_state"] == {"position": 1, "broker_position": 1, "in_agreement": True}
    assert report["killed"] is False
    again = reconcile_bot(engine, settings, bot_id, actor="test")
    assert again["drift_found"] is False and again["final_state"]["position"] == 1


def test_a_position_nobody_can_explain_quarantines_the_bot(engine: Engine,
                                                           settings: Settings) -> None:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    manager.place(NewOrder("rc-2", "MES", Side.SELL, 1, OrderType.MARKET), risk_context())
    manager.on_fills(manager.broker.on_bar("MES", flat_bar(NOW, 5000.0)))
    with write_transaction(engine) as conn:  # our book drifts with no event to explain it
        conn.execute(sa.update(Position).where(Position.bot_id == bot_id).values(qty=3))
    report = reconcile_bot(engine, settings, bot_id, actor="test")
    assert report["killed"] is True
    assert any(a["kind"] == "MISMATCH" for a in report["actions"])
    with engine.connect() as conn:
        state = conn.execute(sa.select(Bot.kill_state).where(Bot.id == bot_id)).scalar_one()
        trigger = conn.execute(sa.select(KillEvent.trigger_code).where(
            KillEvent.bot_id == bot_id)).scalar_one()
    assert (state, trigger) == ("QUARANTINED", "RECONCILE_MISMATCH")
