"""Brokers without native brackets (Tradovate): the order manager places the stop-loss and
profit target once the entry fills, and cancels one when the other fills."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.jobs import JobType
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.domain.trading import OrderType, Side
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Order
from botwarden.trading.brokers import BrokerRejected, PaperBroker, SqlStateStore
from botwarden.trading.brokers.base import Ack, Bracket, OrderRequest
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.order_store import NewOrder
from tests.trading.runner_support import GENEROUS, NOW, make_bot, risk_context


class NoBracketBroker(PaperBroker):
    """A paper market behind an adapter that, like Tradovate's, refuses brackets."""

    supports_brackets = False

    def submit(self, request: OrderRequest) -> Ack:
        if request.bracket is not None:
            raise BrokerRejected("BRACKET_UNSUPPORTED", "no brackets here")
        return super().submit(request)


def _bar(minutes: int, low: float, high: float, open_: float = 5000.0) -> Any:
    from botwarden.data.providers.base import Bar

    at = NOW + timedelta(minutes=minutes)
    return Bar("MES", "1m", int(at.timestamp() * 1e9), open_, high, low, open_, 10)


def _orders(engine: Engine, bot_id: str) -> dict[str, tuple[str, str, Decimal | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Order.client_order_id, Order.order_type, Order.status,
                                      Order.stop_price, Order.limit_price)
                            .where(Order.bot_id == bot_id)).all()
    return {r.client_order_id: (r.order_type, r.status, r.stop_price or r.limit_price)
            for r in rows}


def _bracketed(engine: Engine) -> tuple[str, NoBracketBroker, OrderManager]:
    """A bot with a runner instance (its trades are booked to it), on a paper market that
    refuses brackets, and its order manager with a bracket of 8 and 16 ticks."""
    account_id, bot_id = make_bot(engine)
    with write_transaction(engine) as conn:
        job_store.create_job(conn, account_id=account_id, job_type=JobType.RUNNER,
                             actor="test", now=utcnow(), bot_id=bot_id)
    broker = NoBracketBroker(f"paper:{bot_id}", SqlStateStore(engine))
    manager = OrderManager(engine, bot_id=bot_id, job_id=None, broker=broker, mode="PAPER",
                           source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                           clock=lambda: NOW, bracket=Bracket(8, 16))
    manager.load("MES")
    return bot_id, broker, manager


def test_exits_follow_the_entry_and_cancel_each_other(engine: Engine,
                                                      settings: Settings) -> None:
    bot_id, broker, manager = _bracketed(engine)
    entry = manager.place(NewOrder("mx-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    assert entry.status is not None and entry.status.value == "WORKING"
    manager.on_fills(broker.on_bar("MES", _bar(0, 4999.75, 5000.25)))  # fills at 5000.00
    orders = _orders(engine, bot_id)
    assert orders["mx-1:MSL"] == ("STOP", "WORKING", Decimal("4998.00"))
    assert orders["mx-1:MTP"] == ("LIMIT", "WORKING", Decimal("5004.00"))
    manager.on_fills(broker.on_bar("MES", _bar(1, 4997.0, 5000.5)))  # trades through the stop
    orders = _orders(engine, bot_id)
    assert orders["mx-1:MSL"][1] == "FILLED" and orders["mx-1:MTP"][1] == "CANCELED"
    assert manager.position("MES") == 0 and broker.position("MES").qty == 0


def test_between_bars_a_filled_entry_gets_its_exits_at_once(engine: Engine,
                                                            settings: Settings) -> None:
    """A real broker's fill learnt between bars (RunnerCore.on_fills_between_bars): the
    protective exits go out then, not at the next bar."""
    from botwarden.data.calendar import get_calendar
    from botwarden.domain.instruments import get_instrument
    from botwarden.research.strategies import build_strategy
    from botwarden.trading.runner_core import Money, RunnerCore

    bot_id, broker, manager = _bracketed(engine)
    zero = Decimal(0)
    core = RunnerCore(bot_id, build_strategy("sma_cross", {"fast": 1, "slow": 2}),
                      get_instrument("MES"), get_calendar(), manager, None,
                      Money(Decimal(50_000), zero, zero, Decimal(50_000), Decimal(50_000),
                            Decimal(50_000)))
    manager.place(NewOrder("mx-2", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    fills = broker.on_bar("MES", _bar(0, 4999.75, 5000.25))  # the broker filled it
    assert "mx-2:MSL" not in _orders(engine, bot_id)
    assert [a.fill.client_order_id for a in core.on_fills_between_bars(fills)] == ["mx-2"]
    orders = _orders(engine, bot_id)
    assert orders["mx-2:MSL"] == ("STOP", "WORKING", Decimal("4998.00"))
    assert orders["mx-2:MTP"] == ("LIMIT", "WORKING", Decimal("5004.00"))
