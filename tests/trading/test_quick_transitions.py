"""A bar's acknowledgements and cancels are written at the end of the bar's scope, after its
orders are sent (quick_transitions), never lost: the rows end as the broker says, a failure
inside the scope leaves memory as the rows are, and a row that moved on meanwhile is
settled the long way."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.store.db import write_transaction
from botwarden.store.models import Order
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.order_store import NewOrder
from tests.trading.runner_support import make_bot, paper_manager, risk_context


def _statuses(engine: Engine, bot_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Order.client_order_id, Order.status).where(
            Order.bot_id == bot_id)).tuples().all())


def _manager(engine: Engine, settings: Settings) -> tuple[OrderManager, str]:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    return manager, bot_id


def _limit(cid: str, price: str) -> NewOrder:
    return NewOrder(cid, "MES", Side.BUY, 1, OrderType.LIMIT, limit_price=Decimal(price))


def test_acks_and_cancels_are_written_at_the_end(
        engine: Engine, settings: Settings) -> None:
    manager, bot_id = _manager(engine, settings)
    manager.place(_limit("q-1", "4990"), risk_context())  # outside a scope: written at once
    assert _statuses(engine, bot_id) == {"q-1": "WORKING"}
    with manager.transitions_deferred():
        assert manager.cancel("q-1") is OrderStatus.CANCELED
        assert "q-1" not in manager.open  # held as final in memory at once
        assert _statuses(engine, bot_id) == {"q-1": "WORKING"}  # the row waits
        manager.place(_limit("q-2", "4980"), risk_context())  # persisted first, and sent
        assert _statuses(engine, bot_id) == {"q-1": "WORKING", "q-2": "PENDING"}
        assert manager.open["q-2"].status is OrderStatus.WORKING
    assert _statuses(engine, bot_id) == {"q-1": "CANCELED", "q-2": "WORKING"}


def test_a_failure_inside_the_scope_leaves_memory_as_the_rows_are(
        engine: Engine, settings: Settings) -> None:
    manager, bot_id = _manager(engine, settings)
    with pytest.raises(RuntimeError), manager.transitions_deferred():
        manager.place(_limit("q-3", "4990"), risk_context())
        raise RuntimeError("the runner failed before the bar's end")
    assert _statuses(engine, bot_id) == {"q-3": "PENDING"}
    assert manager.open["q-3"].status is OrderStatus.PENDING and manager.unsettled
    manager.resolve_open()  # asks the broker: it has the order working
    assert _statuses(engine, bot_id) == {"q-3": "WORKING"}


def test_a_row_that_moved_on_is_settled_the_long_way(engine: Engine,
                                                     settings: Settings) -> None:
    manager, bot_id = _manager(engine, settings)
    with manager.transitions_deferred():
        manager.place(_limit("q-4", "4990"), risk_context())
        with write_transaction(engine) as conn:  # another writer got there first
            conn.execute(sa.update(Order).where(Order.client_order_id == "q-4")
                         .values(status="UNRESOLVED"))
    # the quick write found UNRESOLVED, not PENDING; the long way moves it on to WORKING
    assert _statuses(engine, bot_id) == {"q-4": "WORKING"}
