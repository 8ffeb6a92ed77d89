"""The paper broker's book lives in `paper_broker_state` (SQLite and PostgreSQL): a new broker
on the same database and account key resumes exactly; two writers on one key are refused; a
save that fails leaves nothing half-done in memory."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from botwarden.domain.trading import OrderStatus, Side
from botwarden.store.models.trading import PaperBrokerState
from botwarden.trading.brokers import (
    Bracket,
    BrokerStateConflict,
    BrokerTimeout,
    PaperBroker,
    SqlStateStore,
    bracket_ids,
)
from tests.trading.brokers.helpers import bar, limit, market, px


def test_a_new_broker_resumes_exactly(engine: Engine) -> None:
    first = PaperBroker("bot-1", SqlStateStore(engine), slippage_ticks=1)
    first.submit(market("e", Side.BUY, qty=2, bracket=Bracket(4, 8)))
    first.submit(limit("l", Side.BUY, 90))
    first.on_bar("MES", bar(0, 100, 101, 99, 100))
    first.submit(market("m", Side.BUY))  # sent, not filled yet
    before = (first.open_orders(), first.fills(), first.position("MES"))

    restarted = PaperBroker("bot-1", SqlStateStore(engine), slippage_ticks=1)
    assert (restarted.open_orders(), restarted.fills(), restarted.position("MES")) == before
    assert restarted.last_bar["MES"] == bar(0, 100, 101, 99, 100)
    assert restarted.submit(market("e", Side.BUY, qty=2, bracket=Bracket(4, 8))).duplicate

    # the restarted broker goes on exactly as the first would have
    fills = restarted.on_bar("MES", bar(1, 102, 112, 101, 110))
    assert [(f.client_order_id, f.price) for f in fills] == [
        ("m", px(103)), (bracket_ids("e")[1], px(109))]
    position = restarted.position("MES")
    assert (position.qty, position.avg_price) == (1, px(103))
    # bought 2 at 101 and 1 at 103, the target sold 2 at 109 (FIFO: the lots at 101):
    # 2 x 8 ticks of $1.25, less 5 contract-sides of $0.62
    assert position.realized_pnl == Decimal("20.00") - Decimal("0.62") * 5


def test_accounts_are_apart(engine: Engine) -> None:
    store = SqlStateStore(engine)
    PaperBroker("a", store).submit(market("c", Side.BUY))
    other = PaperBroker("b", store)
    assert other.query_order("c") is None
    assert not other.submit(market("c", Side.BUY)).duplicate
    with engine.connect() as conn:
        keys = conn.execute(sa.select(PaperBrokerState.account_key)).scalars().all()
    assert sorted(keys) == ["a", "b"]


def test_a_second_writer_on_one_key_is_refused(engine: Engine) -> None:
    one = PaperBroker("k", SqlStateStore(engine))
    two = PaperBroker("k", SqlStateStore(engine))
    one.submit(market("a", Side.BUY))
    with pytest.raises(BrokerStateConflict):
        two.submit(market("b", Side.BUY))
    # the refused broker reloads: it now sees the other's order and can go on
    assert two.query_order("a") is not None and two.query_order("b") is None
    two.submit(market("b", Side.BUY))
    assert {o.client_order_id for o in PaperBroker("k", SqlStateStore(engine)).open_orders()
            } == {"a", "b"}


class FlakyStore(SqlStateStore):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.fail_next = False

    def save(self, account_key: str, state: dict[str, Any], expected_revision: int) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        super().save(account_key, state, expected_revision)


def test_a_failed_save_is_an_unknown_outcome_and_memory_is_reloaded(engine: Engine) -> None:
    store = FlakyStore(engine)
    broker = PaperBroker("k", store)
    broker.submit(market("a", Side.BUY))
    store.fail_next = True
    with pytest.raises(BrokerTimeout):
        broker.submit(market("b", Side.BUY))
    assert broker.query_order("b") is None  # not stored, so not known
    assert broker.submit(market("b", Side.BUY)).duplicate is False
    store.fail_next = True
    with pytest.raises(BrokerTimeout):
        broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    assert broker.fills() == []  # the bar is matched again when it comes again
    assert len(broker.on_bar("MES", bar(0, 100, 101, 99, 100))) == 2
    report = broker.query_order("b")
    assert report is not None and report.status is OrderStatus.FILLED


def test_history_is_bounded(engine: Engine) -> None:
    broker = PaperBroker("k", SqlStateStore(engine), history_limit=3)
    for i in range(6):
        broker.submit(market(f"m{i}", Side.BUY if i % 2 == 0 else Side.SELL))
        broker.on_bar("MES", bar(i, 100, 101, 99, 100))
    remembered = [f"m{i}" for i in range(6) if broker.query_order(f"m{i}") is not None]
    assert remembered == ["m3", "m4", "m5"]
    assert len(broker.fills()) == 3 and broker.position("MES").qty == 0
