"""A runner's bar on PostgreSQL persists its intents in one statement, judged on the gate it
saw last and committed only if that gate still holds (guarded_intents). On SQLite the usual
way runs: every test here expects the same outcome on both databases, and on PostgreSQL
that the guarded statement ran."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.store.models import Account, Bot, Order, Trace
from botwarden.trading import guarded_intents
from botwarden.trading import order_store as store
from botwarden.trading.brokers import PaperBroker
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.order_store import FenceLost, NewOrder
from tests.trading.runner_support import (
    GENEROUS,
    NOW,
    flat_bar,
    hard_kill,
    make_bot,
    risk_context,
    runner_context,
    runner_payload,
)
from tests.trading.test_kill_gate_lock import _a_backend_waits_on_a_lock

orders = Order.__table__
traces = Trace.__table__


@pytest.fixture
def runner(engine: Engine, settings: Settings) -> tuple[OrderManager, str, str]:
    """A runner's order manager (a job, the bot's fence), long one contract."""
    from botwarden.domain.risk_limits import parse_risk_limits
    from botwarden.trading.broker_factory import make_broker

    account_id, bot_id = make_bot(engine)
    ctx = runner_context(engine, settings, account_id, bot_id, runner_payload(bot_id))
    store.claim_fence(engine, bot_id, ctx.job_id, NOW)
    manager = OrderManager(engine, bot_id=bot_id, job_id=ctx.job_id,
                           broker=make_broker(engine, settings, bot_id, "paper"), mode="PAPER",
                           source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                           clock=lambda: NOW)
    manager.load("MES")
    manager.place(NewOrder("entry-1", "MES", Side.BUY, 1, OrderType.MARKET), risk_context())
    assert isinstance(manager.broker, PaperBroker)
    manager.on_fills(manager.broker.on_bar("MES", flat_bar(NOW, 5000)))
    assert manager.position("MES") == 1 and manager.gate_seen is not None
    return manager, account_id, bot_id


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The guarded statement's runs: their parameters, the rows given as JSON."""
    seen: list[dict[str, Any]] = []
    run, as_json = guarded_intents._run, guarded_intents._json
    rows: list[list[dict[str, Any]]] = []

    def json_spy(given: list[dict[str, Any]]) -> str:
        rows.append([dict(row) for row in given])
        return as_json(given)

    def run_spy(engine: Engine, params: dict[str, Any]) -> Any:
        found = run(engine, params)
        seen.append({"traces": rows[-2], "orders": rows[-1],
                     "accepted": found is not None and found[-1]})
        return found

    monkeypatch.setattr(guarded_intents, "_json", json_spy)
    monkeypatch.setattr(guarded_intents, "_run", run_spy)
    yield seen


def _reversal(n: int) -> list[NewOrder]:
    return [NewOrder(f"exit-{n}", "MES", Side.SELL, 1, OrderType.MARKET),
            NewOrder(f"entry-{n}", "MES", Side.SELL, 1, OrderType.MARKET)]


def _bar(manager: OrderManager, chain: list[NewOrder]) -> list[Any]:
    with manager.one_transaction():
        return manager.place_chain(chain, risk_context())


def _stored(engine: Engine, table: sa.Table, column: str, keys: list[str]) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(sa.select(table).where(table.c[column].in_(keys))).mappings()
        return {row[column]: dict(row) for row in found}


def _traces_of(engine: Engine, bot_id: str, client_id: str) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(traces.c.kind, traces.c.reason_code, traces.c.detail)
                            .where(traces.c.bot_id == bot_id)).all()
    return sorted((r.kind, r.reason_code) for r in rows
                  if r.detail.get("order", {}).get("client_order_id") == client_id)


def test_a_bar_on_an_unchanged_gate_writes_in_one_statement_exactly_the_usual_rows(
        engine: Engine, runner: tuple[OrderManager, str, str],
        statements: list[dict[str, Any]]) -> None:
    manager, _, bot_id = runner
    placed = _bar(manager, _reversal(2))
    assert [p.status for p in placed] == [OrderStatus.WORKING, OrderStatus.WORKING]
    if engine.dialect.name != "postgresql":
        assert statements == []  # the usual way
        return
    [run] = statements
    assert run["accepted"] and len(run["orders"]) == 2 and len(run["traces"]) == 2
    # Every column as the usual way binds it; the sends changed status and updated_at since.
    written = _stored(engine, orders, "id", [row["id"] for row in run["orders"]])
    for row in run["orders"]:
        expected = {column.name: row.get(column.name) for column in orders.columns}
        expected.update(status="WORKING", updated_at=written[row["id"]]["updated_at"],
                        broker_order_id=written[row["id"]]["broker_order_id"])
        assert written[row["id"]] == expected
    written = _stored(engine, traces, "id", [row["id"] for row in run["traces"]])
    for row in run["traces"]:
        assert written[row["id"]] == {column.name: row.get(column.name)
                                      for column in traces.columns}


def test_a_column_the_rows_leave_out_has_no_default_to_lose() -> None:
    """jsonb_populate_recordset makes a key left out NULL, not the column's default."""
    order = store.order_row("b", "j", NewOrder("c", "MES", Side.BUY, 1, OrderType.MARKET),
                            broker="paper", mode="PAPER", now=NOW,
                            status=OrderStatus.PENDING, reject_code=None)
    trace = store.trace_row("b", "j", kind="DECISION", bar_time=NOW, decision="ORDER",
                            reason_code=None, detail={}, now=NOW)
    for table, row in ((orders, order), (traces, trace)):
        assert set(row) <= {column.name for column in table.columns}
        for column in table.columns:
            if column.name not in row:
                assert column.nullable and column.default is None \
                    and column.server_default is None, column.name


@pytest.mark.parametrize("change", ["bot killed", "account switch", "trading state"])
def test_a_gate_changed_since_it_was_seen_writes_nothing_and_the_usual_way_judges_again(
        engine: Engine, runner: tuple[OrderManager, str, str],
        statements: list[dict[str, Any]], change: str) -> None:
    manager, account_id, bot_id = runner
    if change == "bot killed":
        hard_kill(engine, bot_id)
    with engine.begin() as conn:
        if change == "account switch":
            conn.execute(sa.update(Account.__table__).where(Account.__table__.c.id == account_id)
                         .values(kill_switch_engaged=True))
        if change == "trading state":
            conn.execute(sa.update(Bot.__table__).where(Bot.__table__.c.id == bot_id)
                         .values(trading_state="HALTED"))
    held_before = (dict(manager.open), set(manager.seen_ids), manager.sent_times)
    placed = _bar(manager, _reversal(2))
    assert [p.status for p in placed] == [None]  # the exit refused: the chain ends there
    assert not placed[0].verdict.allowed
    assert _stored(engine, orders, "client_order_id", ["exit-2", "entry-2"]) == {}
    # The denial and its no-trade trace, once: the refused statement wrote nothing.
    assert _traces_of(engine, bot_id, "exit-2") == [
        ("DECISION", placed[0].verdict.code), ("NO_TRADE", placed[0].verdict.code)]
    assert (manager.open, manager.seen_ids, manager.sent_times) == held_before
    if engine.dialect.name == "postgresql":
        [run] = statements
        assert not run["accepted"] and [r["client_order_id"] for r in run["orders"]] == [
            "exit-2", "entry-2"]
    assert manager.gate_seen.kill_state == ("HARD_KILLED" if change == "bot killed"
                                            else "NONE")


def test_a_runner_whose_fence_moved_writes_nothing(
        engine: Engine, runner: tuple[OrderManager, str, str],
        statements: list[dict[str, Any]]) -> None:
    manager, _, bot_id = runner
    with engine.begin() as conn:  # released: as when the bot's runner was stopped
        conn.execute(sa.update(store.runner_states).where(
            store.runner_states.c.bot_id == bot_id).values(job_id=None))
    with pytest.raises(FenceLost):
        _bar(manager, _reversal(2))
    assert _stored(engine, orders, "client_order_id", ["exit-2", "entry-2"]) == {}
    assert _traces_of(engine, bot_id, "exit-2") == []
    assert "exit-2" not in manager.seen_ids


def test_the_statement_waits_for_a_kill_in_progress_and_then_sees_it(
        engine: Engine, runner: tuple[OrderManager, str, str],
        statements: list[dict[str, Any]]) -> None:
    """The gate is locked as the usual way locks it: a kill being committed holds the bot's
    row; the statement waits for it, then reads the row as the kill left it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write transactions take turns by BEGIN IMMEDIATE")
    manager, _, bot_id = runner
    placed: list[Any] = []
    with engine.connect() as killer:
        with killer.begin():
            killer.execute(sa.update(Bot.__table__).where(Bot.__table__.c.id == bot_id)
                           .values(kill_state="HARD_KILLED"))
            bar = threading.Thread(target=lambda: placed.extend(_bar(manager, _reversal(2))))
            bar.start()
            assert _a_backend_waits_on_a_lock(engine), "the statement did not wait"
        bar.join(timeout=30)
    assert not bar.is_alive()
    assert [p.status for p in placed] == [None] and placed[0].verdict.code == "KILLED"
    assert statements[0]["accepted"] is False
    assert _stored(engine, orders, "client_order_id", ["exit-2", "entry-2"]) == {}


def test_a_connection_lost_at_the_statement_fails_the_bar_as_sqlalchemy_would(
        engine: Engine, runner: tuple[OrderManager, str, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The bar fails with SQLAlchemy's own exception (the runner restarts from the store),
    and the dead connection is not handed out again."""
    if engine.dialect.name != "postgresql":
        pytest.skip("the guarded statement runs on PostgreSQL only")
    manager, _, _ = runner
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    checkout, run = engine.raw_connection, guarded_intents._run
    lost: list[int] = []

    def terminated() -> Any:  # the statement's connection, its server process just ended
        pooled = checkout()
        pid = pooled.driver_connection.info.backend_pid  # type: ignore[union-attr]
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid, 5000)"),
                                {"pid": pid}).scalar_one()
        lost.append(pid)
        return pooled

    def run_on_a_lost_connection(given: Engine, params: dict[str, Any]) -> Any:
        monkeypatch.setattr(engine, "raw_connection", terminated)
        try:
            return run(given, params)
        finally:
            monkeypatch.setattr(engine, "raw_connection", checkout)

    monkeypatch.setattr(guarded_intents, "_run", run_on_a_lost_connection)
    with pytest.raises(sa.exc.OperationalError):
        _bar(manager, _reversal(2))
    admin.dispose()
    assert len(lost) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != lost[0]


def test_the_rows_json_is_what_json_dumps_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson writes the rows; what it refuses and json.dumps writes goes through json.dumps,
    so the statement reads the values the usual way would have bound."""
    at = datetime(2026, 3, 2, 14, 30, 0, 123456, tzinfo=UTC)
    rows = [{"price": Decimal("5012.25"), "at": at, "east": at.astimezone(timezone(
             timedelta(hours=-5))), "figures": {"sma": np.float64(1.5), 3: "by int key"},
             "none": None, "flag": True, "text": "é\"\n"},
            {"huge": 10**20}]
    expected = json.loads(json.dumps(rows, default=guarded_intents._plain))
    assert json.loads(guarded_intents._json(rows)) == expected  # the huge int: json.dumps
    with monkeypatch.context() as patched:  # the first row is orjson's own
        patched.setattr(guarded_intents.json, "dumps", None)
        assert json.loads(guarded_intents._json(rows[:1])) == expected[:1]
    with pytest.raises(ValueError, match="naive"):
        guarded_intents._json([{"at": datetime(2026, 3, 2, 14, 30)}])
