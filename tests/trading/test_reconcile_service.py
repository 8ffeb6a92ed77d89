"""Reconcile: fixable drift is fixed and reported; a drift it cannot explain quarantines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.providers.base import Bar
from botwarden.domain.risk import MarketFacts
from botwarden.domain.trading import OrderType, Side
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, KillEvent, Position
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.order_manager import OrderManager, RiskContext
from botwarden.trading.order_store import NewOrder
from botwarden.trading.reconcile_jobs import reconcile_bot
from tests.trading.runner_support import GENEROUS, make_bot

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 New York: session open


def _manager(engine: Engine, settings: Settings, bot_id: str) -> OrderManager:
    from botwarden.domain.risk_limits import parse_risk_limits

    return OrderManager(engine, bot_id=bot_id, job_id=None,
                        broker=make_broker(engine, settings, bot_id, "paper"), mode="PAPER",
                        source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                        clock=lambda: NOW)


def _ctx() -> RiskContext:
    facts = MarketFacts(now=NOW, last_price=Decimal("5000"), last_bar_time=NOW - timedelta(
        seconds=60), bar_seconds=60, session_open=True, minutes_to_close=300,
        minutes_to_high_impact_event=None)
    money = Decimal(50_000)
    return RiskContext(facts, Decimal(0), money, money, money, money, money)


def _bar(at: datetime, price: float) -> Bar:
    return Bar("MES", "1m", int(at.timestamp() * 1e9), price, price + 1, price - 1, price, 10)


def test_a_missed_fill_is_applied_once_and_reported(engine: Engine, settings: Settings) -> None:
    _, bot_id = make_bot(engine)
    manager = _manager(engine, settings, bot_id)
    manager.load("MES")
    placed = manager.place(NewOrder("rc-1", "MES", Side.BUY, 1, OrderType.MARKET), _ctx())
    assert placed.status is not None
    manager.broker.on_bar("MES", _bar(NOW, 5000.0))  # fills at the broker; we never hear it
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
    manager = _manager(engine, settings, bot_id)
    manager.load("MES")
    manager.place(NewOrder("rc-2", "MES", Side.SELL, 1, OrderType.MARKET), _ctx())
    manager.on_fills(manager.broker.on_bar("MES", _bar(NOW, 5000.0)))
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
