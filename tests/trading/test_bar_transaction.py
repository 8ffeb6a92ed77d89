"""A runner's bar (OrderManager.one_transaction, place_chain): the bar's intents commit
before the first order is sent; the paper broker's match and our fills of it, its
acceptance of the orders and our acknowledgements, commit together after; nothing is
written twice or lost, and a crash at the send leaves the intents to be sent again; an
exit the broker rejects cancels the entry after it, unsent; a bar that fails leaves
neither our rows nor the broker's match behind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.store.models import Fill, Order, Trace
from botwarden.trading.brokers import PaperBroker
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.order_store import NewOrder
from tests.trading.runner_support import NOW, flat_bar, make_bot, paper_manager, risk_context


def _rows(engine: Engine, bot_id: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(Order.client_order_id, Order.status).where(
            Order.bot_id == bot_id)).tuples().all())


def _count(engine: Engine, model: Any, bot_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(model)
                                .where(model.bot_id == bot_id)).scalar_one())


@contextmanager
def _commits(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any) -> None:
        seen.append("commit")

    event.listen(engine, "commit", note)
    try:
        yield seen
    finally:
        event.remove(engine, "commit", note)


def _long(manager: OrderManager, broker: PaperBroker) -> None:
    """Hold one contract: bought and filled on a bar."""
    manager.place(NewOrder("entry-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)))
    assert manager.position("MES") == 1


def _reversal() -> list[NewOrder]:
    return [NewOrder("exit-2", "MES", Side.SELL, 1, OrderType.MARKET),
            NewOrder("entry-2", "MES", Side.SELL, 1, OrderType.MARKET)]


@pytest.fixture
def bot(engine: Engine, settings: Settings) -> tuple[OrderManager, PaperBroker, str]:
    _, bot_id = make_bot(engine)
    manager = paper_manager(engine, settings, bot_id)
    manager.load("MES")
    assert isinstance(manager.broker, PaperBroker)
    return manager, manager.broker, bot_id


def test_a_bar_commits_its_intents_before_sending_then_the_brokers_match_with_its_fills(
        engine: Engine, bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    manager.place(NewOrder("entry-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    at_submit: list[tuple[dict[str, str], int, int]] = []
    submit = broker.submit

    def watched(request: Any) -> Any:  # what a crash here would leave, on both sides
        stored = PaperBroker(broker.account_key, broker.store).position("MES").qty
        at_submit.append((_rows(engine, bot_id), _count(engine, Fill, bot_id), stored))
        return submit(request)

    broker.submit = watched  # type: ignore[method-assign]
    add = NewOrder("add-1", "MES", Side.SELL, 1, OrderType.LIMIT, limit_price=Decimal("5020"))
    with _commits(engine) as commits, broker.holding_changes(), manager.one_transaction():
        applied = manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)), new=True)
        assert [a.fill.client_order_id for a in applied] == ["entry-1"]
        assert manager.position("MES") == 1  # decided on at once, in memory
        assert commits == []
        with manager.transitions_deferred():  # as a runner decides: the ack waits
            placed = manager.place_chain([add], risk_context())
            assert len(commits) == 1  # the intent
        assert len(commits) == 2  # then the broker's match and our fill, the acknowledgement
    assert placed[0].status is OrderStatus.WORKING, placed[0].verdict
    # At the submit: the intent was durable; neither the broker's match nor our fill of it.
    assert at_submit == [({"entry-1": "WORKING", "add-1": "PENDING"}, 0, 0)]
    # After the bar: all of it, in the one transaction after the send.
    assert _rows(engine, bot_id) == {"entry-1": "FILLED", "add-1": "WORKING"}
    assert _count(engine, Fill, bot_id) == 1
    stored = PaperBroker(broker.account_key, broker.store)
    assert stored.position("MES").qty == 1 and stored.query_order("add-1") is not None


def test_a_crash_at_the_send_leaves_the_intents_to_send_again_and_the_bar_to_match_again(
        engine: Engine, settings: Settings,
        bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    manager.place(NewOrder("entry-8", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())

    def crash(_request: Any) -> Any:
        raise RuntimeError("the process died while sending")

    broker.submit = crash  # type: ignore[method-assign]
    add = NewOrder("add-8", "MES", Side.SELL, 1, OrderType.LIMIT, limit_price=Decimal("5020"))
    with pytest.raises(RuntimeError), broker.holding_changes(), manager.one_transaction():
        manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)), new=True)
        with manager.transitions_deferred():
            manager.place_chain([add], risk_context())
    assert _rows(engine, bot_id) == {"entry-8": "WORKING", "add-8": "PENDING"}
    assert _count(engine, Fill, bot_id) == 0
    assert broker.position("MES").qty == 0  # reloaded: the match was not stored
    # The restarted runner meets the bar again: the same fill, once; the intent sent again.
    again = paper_manager(engine, settings, bot_id)
    again.load("MES")
    again.on_fills(again.broker.on_bar("MES", flat_bar(NOW, 5000)))  # type: ignore[attr-defined]
    again.resolve_open()
    assert _rows(engine, bot_id) == {"entry-8": "FILLED", "add-8": "WORKING"}
    assert _count(engine, Fill, bot_id) == 1 and again.position("MES") == 1
    assert again.broker.query_order("add-8") is not None


def test_fills_owed_are_written_before_any_other_write(
        engine: Engine, bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    manager.place(NewOrder("entry-6", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    with broker.holding_changes(), manager.one_transaction():
        manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)), new=True)
        assert manager.pending  # owed, not written
        # A fill seen again (an order's report, as resolve_open adopts it) finds it stored
        # first, so it is not applied twice.
        report = broker.query_order("entry-6")
        assert report is not None and manager.on_fills(list(report.fills)) == []
        assert not manager.pending
    assert _count(engine, Fill, bot_id) == 1
    assert manager.position("MES") == 1


def test_a_chain_persists_every_intent_before_the_first_is_sent(
        engine: Engine, bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    _long(manager, broker)
    seen: list[dict[str, str]] = []
    submit = broker.submit

    def watched(request: Any) -> Any:
        seen.append(_rows(engine, bot_id))
        return submit(request)

    broker.submit = watched  # type: ignore[method-assign]
    placed = manager.place_chain(_reversal(), risk_context())
    assert [p.status for p in placed] == [OrderStatus.WORKING, OrderStatus.WORKING]
    assert seen[0]["exit-2"] == "PENDING" and seen[0]["entry-2"] == "PENDING"
    assert _count(engine, Trace, bot_id) == 3  # one decision per order


def test_an_exit_the_broker_rejects_cancels_the_entry_unsent(
        engine: Engine, bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    _long(manager, broker)
    bad_exit = NewOrder("exit-4:SL", "MES", Side.SELL, 1, OrderType.MARKET)  # a reserved id
    placed = manager.place_chain([bad_exit, _reversal()[1]], risk_context())
    assert [(p.client_order_id, p.status) for p in placed] == [
        ("exit-4:SL", OrderStatus.REJECTED), ("entry-2", OrderStatus.CANCELED)]
    assert _rows(engine, bot_id)["entry-2"] == "CANCELED"
    assert broker.query_order("entry-2") is None  # never sent
    assert "entry-2" not in manager.open


def test_a_refused_order_ends_the_chain_unjudged_after_it(
        engine: Engine, bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    too_big = NewOrder("big-1", "MES", Side.BUY, 5, OrderType.MARKET)
    placed = manager.place_chain(
        [too_big, NewOrder("after-1", "MES", Side.BUY, 1, OrderType.MARKET)], risk_context())
    assert [(p.client_order_id, p.status) for p in placed] == [("big-1", None)]
    assert not placed[0].verdict.allowed
    assert _rows(engine, bot_id) == {}
    assert _count(engine, Trace, bot_id) == 2  # the denial and its NO_TRADE, nothing after


def test_a_bar_that_fails_leaves_neither_our_fills_nor_the_brokers_match(
        engine: Engine, settings: Settings,
        bot: tuple[OrderManager, PaperBroker, str]) -> None:
    manager, broker, bot_id = bot
    manager.place(NewOrder("entry-5", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    fills_before = _count(engine, Fill, bot_id)
    with pytest.raises(RuntimeError), broker.holding_changes(), manager.one_transaction():
        assert manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)))
        raise RuntimeError("the runner failed before its decisions")
    assert _count(engine, Fill, bot_id) == fills_before
    assert broker.fills() == []  # reloaded: the match went with our transaction
    assert _rows(engine, bot_id)["entry-5"] == "WORKING"
    # A restarted runner (a new manager) meets the same bar again: filled then, once.
    again = paper_manager(engine, settings, bot_id)
    again.load("MES")
    again.on_fills(again.broker.on_bar("MES", flat_bar(NOW, 5000)))  # type: ignore[attr-defined]
    assert again.position("MES") == 1
    assert _count(engine, Fill, bot_id) == fills_before + 1


def test_an_intent_the_database_refuses_rolls_the_bar_back_unsent(
        engine: Engine, settings: Settings,
        bot: tuple[OrderManager, PaperBroker, str]) -> None:
    """On PostgreSQL the intents go with the COMMIT in one round trip: the refusal comes
    back with the commit, and it still ends the bar with nothing of it stored or sent."""
    manager, broker, bot_id = bot
    manager.place(NewOrder("entry-9", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    with engine.begin() as conn:  # another writer took the client id the bar will use
        other = conn.execute(sa.select(Order.__table__).where(
            Order.client_order_id == "entry-9")).mappings().one()
        conn.execute(sa.insert(Order.__table__), {**other, "id": "other-row",
                                                  "client_order_id": "taken-9"})
    traces = _count(engine, Trace, bot_id)
    taken = NewOrder("taken-9", "MES", Side.SELL, 1, OrderType.LIMIT,
                     limit_price=Decimal("5020"))
    with pytest.raises(sa.exc.IntegrityError), broker.holding_changes(), \
            manager.one_transaction():
        manager.on_fills(broker.on_bar("MES", flat_bar(NOW, 5000)), new=True)
        with manager.transitions_deferred():
            manager.place_chain([taken], risk_context())
    assert _count(engine, Trace, bot_id) == traces  # its decision went with it
    assert _count(engine, Fill, bot_id) == 0
    assert broker.query_order("taken-9") is None  # never sent
    assert broker.position("MES").qty == 0  # the broker's match went too: reloaded
    # The connections went back to the pool clean: the restarted runner writes as usual.
    again = paper_manager(engine, settings, bot_id)
    again.load("MES")
    placed = again.place(NewOrder("exit-10", "MES", Side.SELL, 1, OrderType.LIMIT,
                                  limit_price=Decimal("5030")), risk_context())
    assert placed.status is OrderStatus.WORKING, placed.verdict
    assert _rows(engine, bot_id)["exit-10"] == "WORKING"
