"""The paper broker's book lives in `paper_broker_state` and `paper_broker_journal` (SQLite
and PostgreSQL): a new broker on the same database and account key resumes exactly, from a
snapshot and the changes after it; two writers on one key are refused; a save that fails
leaves nothing half-done in memory."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from botwarden.domain.trading import OrderStatus, Side
from botwarden.store.models.trading import PaperBrokerJournal, PaperBrokerState
from botwarden.trading.brokers import (
    Bracket,
    BrokerRejected,
    BrokerStateConflict,
    BrokerTimeout,
    MemoryStateStore,
    PaperBroker,
    SqlStateStore,
    bracket_ids,
)
from tests.trading.brokers.helpers import bar, limit, market, px, stop


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

    def _fail(self) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OperationalError("UPDATE", {}, Exception("database is locked"))

    def save(self, account_key: str, state: dict[str, Any], expected_revision: int) -> None:
        self._fail()
        super().save(account_key, state, expected_revision)

    def append(self, account_key: str, change: dict[str, Any], expected_revision: int) -> None:
        self._fail()
        super().append(account_key, change, expected_revision)


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


def _book(broker: PaperBroker) -> tuple[Any, ...]:
    """What a reload must give back (not the last bar: a bar that changes nothing is not
    saved, and matching it again changes nothing again)."""
    return (broker.open_orders(), broker.fills(), broker.position("MES"),
            [broker.query_order(f"m{i}") for i in range(12)])


def test_changes_are_journalled_and_folded_back_on_load(engine: Engine) -> None:
    broker = PaperBroker("j", SqlStateStore(engine), snapshot_every=4, history_limit=5)
    for i in range(12):
        broker.submit(market(f"m{i}", Side.BUY if i % 2 == 0 else Side.SELL,
                             bracket=Bracket(4, 8) if i % 3 == 0 else None))
        broker.on_bar("MES", bar(i, 100 + i, 104 + i, 96 + i, 100 + i))
        # at every point, a new broker on the same key sees exactly this book
        assert _book(PaperBroker("j", SqlStateStore(engine), history_limit=5)) == _book(broker)
    with engine.connect() as conn:
        journal = conn.execute(sa.select(PaperBrokerJournal.revision).where(
            PaperBrokerJournal.account_key == "j")).scalars().all()
        head, snapshot = conn.execute(sa.select(PaperBrokerState.revision,
                                                PaperBrokerState.state)).one()
    # a snapshot at most every 4 changes; the journal holds only the changes after it
    assert 0 < len(journal) <= 4 or journal == []
    assert all(r > snapshot["revision"] for r in journal)
    assert head == max([snapshot["revision"], *journal])


def test_a_second_writer_is_refused_across_a_snapshot(engine: Engine) -> None:
    one = PaperBroker("k", SqlStateStore(engine), snapshot_every=2)
    two = PaperBroker("k", SqlStateStore(engine), snapshot_every=2)
    for i in range(3):  # the first save is a snapshot, then changes, then a snapshot again
        one.submit(market(f"a{i}", Side.BUY))
    with pytest.raises(BrokerStateConflict):
        two.submit(market("b", Side.BUY))
    two.submit(market("b", Side.BUY))  # reloaded: goes on from the other's book
    with pytest.raises(BrokerStateConflict):
        one.submit(market("a9", Side.BUY))
    assert {o.client_order_id for o in PaperBroker("k", SqlStateStore(engine)).open_orders()
            } == {"a0", "a1", "a2", "b"}


_OPS = st.lists(st.tuples(st.sampled_from(["market", "limit", "stop", "cancel", "bar"]),
                          st.integers(0, 7), st.integers(-6, 6)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, every=st.integers(1, 6), keep=st.integers(1, 6))
def test_any_history_reloads_to_the_same_book(ops: list[tuple[str, int, int]], every: int,
                                              keep: int) -> None:
    store = MemoryStateStore()
    broker = PaperBroker("h", store, snapshot_every=every, history_limit=keep)
    price, index = 100, 0
    for kind, n, move in ops:
        side = Side.BUY if n % 2 == 0 else Side.SELL
        with contextlib.suppress(BrokerRejected):  # an id reused for another order: refused
            if kind == "market":
                broker.submit(market(f"m{n}", side,
                                     bracket=Bracket(2, 3) if n % 3 == 0 else None))
            elif kind == "limit":
                broker.submit(limit(f"m{n}", side, price + move))
            elif kind == "stop":
                broker.submit(stop(f"m{n}", side, price - move))
            elif kind == "cancel":
                broker.cancel(f"m{n}")
            else:
                price += move
                broker.on_bar("MES", bar(index, price, price + 3, price - 3,
                                         price + move // 2))
                index += 1
        reloaded = PaperBroker("h", store, history_limit=keep)
        assert _book(reloaded) == _book(broker)


def test_cancelling_several_orders_saves_the_book_once() -> None:
    store = MemoryStateStore()
    broker = PaperBroker("c", store)
    broker.submit(limit("l1", Side.BUY, 90))
    broker.submit(stop("s1", Side.SELL, 80))
    saves = store.saves
    reports = broker.cancel_many(["l1", "nobody", "s1"])
    assert [r.status if r else None for r in reports] == [
        OrderStatus.CANCELED, None, OrderStatus.CANCELED]
    assert store.saves == saves + 1
    broker.cancel_many(["l1", "s1"])  # nothing left to cancel: nothing saved
    assert store.saves == saves + 1
    assert PaperBroker("c", store).open_orders() == []
