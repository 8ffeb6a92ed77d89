"""A simulated broker's held changes (`holding_changes`, a runner's bar): stored once, in the
caller's transaction when the book is on the same database, or at the scope's end; a caller
transaction that does not commit takes them with it, and the broker reloads its book."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.domain.trading import OrderStatus, Side
from botwarden.store.db import write_transaction
from botwarden.store.models.trading import PaperBrokerJournal
from botwarden.trading.brokers import MemoryStateStore, PaperBroker, SqlStateStore
from tests.trading.brokers.helpers import bar, limit, market


def _journal(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(PaperBrokerJournal))
                   .scalar_one())


def test_changes_held_in_a_scope_are_stored_once_at_its_end() -> None:
    store = MemoryStateStore()
    broker = PaperBroker("h", store)
    broker.submit(limit("first", Side.BUY, 90))  # outside a scope: saved at once
    saves = store.saves
    with broker.holding_changes():
        broker.submit(market("a", Side.BUY))
        broker.on_bar("MES", bar(0, 100, 101, 99, 100))  # fills "a": held as well
        broker.cancel("first")
        assert store.saves == saves
        assert PaperBroker("h-other-view", store).open_orders() == []  # another key: apart
        assert PaperBroker("h", MemoryStateStore()).query_order("a") is None
    assert store.saves == saves + 1
    reloaded = PaperBroker("h", store)
    report = reloaded.query_order("a")
    assert report is not None and report.status is OrderStatus.FILLED
    assert reloaded.open_orders() == []  # the cancel was stored with them
    assert reloaded.position("MES").qty == 1


def test_held_changes_commit_with_the_callers_transaction(engine: Engine) -> None:
    broker = PaperBroker("t", SqlStateStore(engine))
    broker.submit(limit("first", Side.BUY, 90))
    journal = _journal(engine)
    with broker.holding_changes():
        broker.submit(market("a", Side.BUY))
        assert _journal(engine) == journal  # held
        with write_transaction(engine) as conn:
            assert broker.write_held(conn) is True
            assert broker.write_held(conn) is False  # nothing more held
        assert _journal(engine) == journal + 1
    assert _journal(engine) == journal + 1  # nothing left for the scope's end
    assert PaperBroker("t", SqlStateStore(engine)).query_order("a") is not None


def test_a_caller_transaction_that_fails_takes_the_held_changes_with_it(
        engine: Engine) -> None:
    broker = PaperBroker("r", SqlStateStore(engine))
    broker.submit(limit("first", Side.BUY, 90))
    with broker.holding_changes():
        broker.submit(market("lost", Side.BUY))
        with pytest.raises(RuntimeError), write_transaction(engine) as conn:
            assert broker.write_held(conn) is True
            raise RuntimeError("the caller's transaction failed")
        broker.held_lost()
        # As if the submit never reached the broker: the book is what is stored.
        assert broker.query_order("lost") is None
        assert broker.query_order("first") is not None
        assert not broker.submit(market("lost", Side.BUY)).duplicate
    assert PaperBroker("r", SqlStateStore(engine)).query_order("lost") is not None


def test_a_book_on_another_store_is_saved_on_its_own_first(engine: Engine) -> None:
    store = MemoryStateStore()
    broker = PaperBroker("m", store)
    broker.submit(limit("first", Side.BUY, 90))
    saves = store.saves
    with broker.holding_changes():
        broker.submit(market("a", Side.BUY))
        with write_transaction(engine) as conn:
            assert broker.write_held(conn) is False  # not this database: saved already
        assert store.saves == saves + 1
    assert store.saves == saves + 1
