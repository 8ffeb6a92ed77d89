"""Fault injection through the order manager, reconcile and the runner: the paper broker's
fault plan drops acknowledgements (the order IS accepted, the answer lost), loses requests
(nothing reaches it, the caller sees the same timeout), disconnects and rejects. Each
outcome goes through UNRESOLVED and a query by client id, a retry under the same client id,
or REJECTED with the broker's code; never a second broker order for one intent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.data.providers.base import Bar
from botwarden.data.synth import write_synthetic
from botwarden.domain.risk import MarketFacts
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.domain.trading import OrderStatus, OrderType, Side
from botwarden.store.models import Fill, Order
from botwarden.trading import runner_job
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.brokers import BrokerFaultKind, BrokerFaultPlan, PaperBroker
from botwarden.trading.order_manager import SEND_ATTEMPTS, OrderManager, RiskContext
from botwarden.trading.order_store import NewOrder
from botwarden.trading.reconcile_service import reconcile
from tests.research.jobs_support import END
from tests.trading.crash_support import intent_time, trades_of
from tests.trading.runner_support import (
    GENEROUS,
    backtest_of,
    first_bar_iso,
    make_bot,
    runner_context,
    runner_payload,
)

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 New York: session open
PRICE = 5000.0


class RecordingBroker:
    """The paper broker, recording each call with our order's status at that moment."""

    def __init__(self, inner: PaperBroker, engine: Engine) -> None:
        self.inner = inner
        self.engine = engine
        self.name = inner.name
        self.calls: list[tuple[str, str, str | None]] = []  # (operation, client id, status)

    def _status(self, client_order_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(Order.status).where(
                Order.client_order_id == client_order_id)).scalar_one_or_none()

    def submit(self, request: Any) -> Any:
        self.calls.append(("submit", request.client_order_id,
                           self._status(request.client_order_id)))
        return self.inner.submit(request)

    def query_order(self, client_order_id: str) -> Any:
        self.calls.append(("query_order", client_order_id, self._status(client_order_id)))
        return self.inner.query_order(client_order_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def ops(self, client_order_id: str) -> list[tuple[str, str | None]]:
        return [(op, status) for op, cid, status in self.calls if cid == client_order_id]


class Desk:
    """One bot: its order manager over a paper broker with a fault plan, and a clock of
    bars (a minute apart) for the risk engine and the broker's market."""

    def __init__(self, engine: Engine, settings: Settings, plan: BrokerFaultPlan,
                 prefix: str = "f") -> None:
        account_id, self.bot_id = make_bot(engine)
        # A RUNNER job: the instance closed trades are booked to.
        runner_context(engine, settings, account_id, self.bot_id, runner_payload(self.bot_id))
        self.engine = engine
        self.plan = plan
        paper = make_broker(engine, settings, self.bot_id, "paper", faults=plan)
        assert isinstance(paper, PaperBroker)
        self.broker = RecordingBroker(paper, engine)
        self.manager = OrderManager(engine, bot_id=self.bot_id, job_id=None,
                                    broker=self.broker, mode="PAPER",  # type: ignore[arg-type]
                                    source_type="PAPER", limits=parse_risk_limits(GENEROUS),
                                    clock=lambda: self.now)
        self.manager.load("MES")
        self.now = NOW
        self.prefix = prefix
        self.count = 0

    def context(self) -> RiskContext:
        facts = MarketFacts(now=self.now, last_price=Decimal(str(PRICE)),
                            last_bar_time=self.now - timedelta(seconds=60), bar_seconds=60,
                            session_open=True, minutes_to_close=300,
                            minutes_to_high_impact_event=None)
        money = Decimal(50_000)
        return RiskContext(facts, Decimal(0), money, money, money, money, money)

    def place(self, side: Side, qty: int = 1) -> Any:
        self.count += 1
        self.now += timedelta(seconds=2)  # orders apart: not one identical order in 1 s
        order = NewOrder(f"{self.prefix}-{self.count}", "MES", side, qty, OrderType.MARKET)
        return self.manager.place(order, self.context())

    def bar(self) -> list[Any]:
        """The next minute's bar: the broker fills what works, we apply it."""
        bar = Bar("MES", "1m", int(self.now.timestamp() * 1e9), PRICE, PRICE + 1, PRICE - 1,
                  PRICE, 10)
        self.now += timedelta(minutes=1)
        return self.manager.on_fills(self.broker.inner.on_bar("MES", bar))

    def row(self, client_order_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(Order).where(
                Order.client_order_id == client_order_id)).one()


def assert_agreement(desk: Desk) -> dict[str, Any]:
    """Reconcile, then: no duplicate, nothing unsettled, positions and fills agree."""
    outcome = reconcile(desk.engine, desk.manager, "MES", actor="test").as_json()
    assert not outcome["killed"], outcome
    assert outcome["final_state"]["in_agreement"], outcome
    broker = desk.broker.inner
    with desk.engine.connect() as conn:
        rows = conn.execute(sa.select(Order.client_order_id, Order.status, Order.reject_code,
                                      Order.filled_qty).where(Order.bot_id == desk.bot_id)
                            ).all()
        fills = set(conn.execute(sa.select(Fill.fill_id).where(Fill.bot_id == desk.bot_id))
                    .scalars())
    for row in rows:
        assert row.status not in ("PENDING", "UNRESOLVED"), row
        report = broker.query_order(row.client_order_id)
        if report is None:  # the broker never had it: only a request it never received
            assert (row.status, row.reject_code) == ("REJECTED", "NOT_AT_BROKER"), row
            continue
        assert report.status.value == row.status and report.filled_qty == row.filled_qty
        if row.status == "REJECTED":
            assert row.reject_code == report.reject_code
    # One broker order per intent: the broker holds no order we have no row for.
    assert {o.client_order_id for o in broker.open_orders()} <= {r.client_order_id
                                                                 for r in rows}
    assert fills == {f.fill_id for f in broker.fills()}
    assert desk.manager.position("MES") == broker.position("MES").qty
    return outcome


# ---- one fault at a time ----


def test_a_dropped_ack_is_unresolved_then_resolved_by_query_with_no_second_order(
        engine: Engine, settings: Settings) -> None:
    desk = Desk(engine, settings, BrokerFaultPlan().drop_ack())
    placed = desk.place(Side.BUY)
    assert placed.status is OrderStatus.WORKING
    # sent once while PENDING; the lost answer made it UNRESOLVED; the query settled it
    assert desk.broker.ops("f-1") == [("submit", "PENDING"), ("query_order", "UNRESOLVED")]
    assert desk.plan.fired == [("submit", BrokerFaultKind.DROP_ACK)]
    assert desk.row("f-1").status == "WORKING"
    desk.bar()
    assert desk.row("f-1").status == "FILLED" and desk.manager.position("MES") == 1
    assert assert_agreement(desk)["drift_found"] is False


def test_an_unanswered_query_leaves_it_unresolved_until_resolve_open(
        engine: Engine, settings: Settings) -> None:
    plan = BrokerFaultPlan().drop_ack().add(BrokerFaultKind.DISCONNECT, calls=1,
                                            operations={"query_order"})
    desk = Desk(engine, settings, plan)
    assert desk.place(Side.SELL).status is OrderStatus.UNRESOLVED
    assert desk.manager.unsettled and desk.row("f-1").status == "UNRESOLVED"
    desk.bar()  # the broker filled it all the same: its fill settles it
    assert desk.row("f-1").status == "FILLED"
    desk.manager.resolve_open()
    assert not desk.manager.unsettled
    assert [op for op, _ in desk.broker.ops("f-1")].count("submit") == 1
    assert assert_agreement(desk)["final_state"]["position"] == -1


def test_a_lost_request_is_sent_again_under_the_same_client_id(
        engine: Engine, settings: Settings) -> None:
    desk = Desk(engine, settings, BrokerFaultPlan().lose_request())
    assert desk.place(Side.BUY).status is OrderStatus.WORKING
    # the broker never saw it (query: unknown), so the same id went again: one order
    assert desk.broker.ops("f-1") == [("submit", "PENDING"), ("query_order", "UNRESOLVED"),
                                      ("submit", "UNRESOLVED")]
    assert [o.client_order_id for o in desk.broker.inner.open_orders()] == ["f-1"]
    desk.bar()
    assert assert_agreement(desk)["final_state"]["position"] == 1


def test_a_disconnect_is_retried_under_the_same_client_id(engine: Engine,
                                                         settings: Settings) -> None:
    desk = Desk(engine, settings, BrokerFaultPlan().disconnect(calls=SEND_ATTEMPTS - 1))
    assert desk.place(Side.BUY).status is OrderStatus.WORKING
    assert desk.broker.ops("f-1") == [("submit", "PENDING")] * SEND_ATTEMPTS
    assert len(desk.broker.inner.open_orders()) == 1
    desk.bar()
    assert assert_agreement(desk)["final_state"]["position"] == 1


def test_a_broker_that_stays_away_leaves_the_intent_pending_for_resolve_open(
        engine: Engine, settings: Settings) -> None:
    desk = Desk(engine, settings, BrokerFaultPlan().disconnect(calls=SEND_ATTEMPTS))
    assert desk.place(Side.SELL).status is OrderStatus.PENDING
    assert desk.manager.unsettled and desk.broker.inner.query_order("f-1") is None
    desk.manager.resolve_open()  # the broker is back: asked, unknown, sent (same id)
    assert desk.row("f-1").status == "WORKING" and not desk.manager.unsettled
    desk.bar()
    assert assert_agreement(desk)["final_state"]["position"] == -1


def test_a_rejection_is_rejected_with_the_broker_code_and_not_retried(
        engine: Engine, settings: Settings) -> None:
    desk = Desk(engine, settings, BrokerFaultPlan().reject("INSUFFICIENT_MARGIN"))
    assert desk.place(Side.BUY).status is OrderStatus.REJECTED
    row = desk.row("f-1")
    assert (row.status, row.reject_code) == ("REJECTED", "INSUFFICIENT_MARGIN")
    assert desk.broker.ops("f-1") == [("submit", "PENDING")]
    desk.manager.resolve_open()
    desk.bar()
    assert [op for op, _ in desk.broker.ops("f-1")] == ["submit"]  # final: never again
    assert assert_agreement(desk)["final_state"]["position"] == 0


def test_reconcile_settles_an_unresolved_order_the_broker_never_received(
        engine: Engine, settings: Settings) -> None:
    plan = BrokerFaultPlan().lose_request().add(BrokerFaultKind.DISCONNECT, calls=1,
                                                operations={"query_order"})
    desk = Desk(engine, settings, plan)
    assert desk.place(Side.BUY).status is OrderStatus.UNRESOLVED
    outcome = assert_agreement(desk)  # resolve: unknown at the broker, so sent (same id)
    assert outcome["final_state"]["position"] == 0
    assert desk.row("f-1").status == "WORKING"
    desk.bar()
    assert assert_agreement(desk)["final_state"]["position"] == 1


# ---- random fault schedules ----

FAULTS = st.sampled_from(["none", "none", "drop_ack", "lose_request", "reject",
                          "disconnect_1", "disconnect_all", "query_down"])
STEPS = st.lists(st.tuples(FAULTS, st.sampled_from(["order", "order", "bar", "resolve"])),
                 min_size=4, max_size=20)


def _arm(plan: BrokerFaultPlan, fault: str) -> None:
    if fault == "drop_ack":
        plan.drop_ack()
    elif fault == "lose_request":
        plan.lose_request()
    elif fault == "reject":
        plan.reject("INJECTED_REJECT")
    elif fault == "disconnect_1":
        plan.disconnect(calls=1)
    elif fault == "disconnect_all":
        plan.disconnect(calls=SEND_ATTEMPTS)
    elif fault == "query_down":
        plan.drop_ack().add(BrokerFaultKind.DISCONNECT, calls=1, operations={"query_order"})


_desks = iter(range(1_000_000))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_random_fault_schedules_settle_without_a_duplicate(
        engine: Engine, settings: Settings, steps: list[tuple[str, str]]) -> None:
    """Whatever faults hit the order entry, in whatever order with bars and resolutions
    between them: after the faults stop and reconcile runs, nothing is unsettled, nothing
    duplicated, and both books agree."""
    plan = BrokerFaultPlan(seed=1)
    desk = Desk(engine, settings, plan, prefix=f"h{next(_desks)}")
    for fault, action in steps:
        plan.clear()
        _arm(plan, fault)
        if action == "order":
            position = desk.manager.position("MES")
            working = desk.manager.working("MES", Side.BUY) + desk.manager.working("MES",
                                                                                    Side.SELL)
            side = Side.SELL if position > 0 else Side.BUY
            if working == 0:
                placed = desk.place(side, abs(position) or 1)
                assert placed.status is not None, placed.verdict
        elif action == "bar":
            desk.bar()
        else:
            desk.manager.resolve_open()
    plan.clear()
    desk.bar()
    assert_agreement(desk)
    desk.bar()  # what reconcile sent again meets the market once, and agrees again
    assert assert_agreement(desk)["drift_found"] is False
    with engine.connect() as conn:
        per_order = conn.execute(sa.select(Fill.order_id, sa.func.count()).where(
            Fill.bot_id == desk.bot_id).group_by(Fill.order_id)).all()
    assert all(n == 1 for _, n in per_order), "an order filled twice"


# ---- the runner ----


@pytest.fixture
def replay_settings(settings: Settings) -> Settings:
    write_synthetic(BarStore(settings.data_dir), "MES", 1, seed=7, end=END)
    return settings


def faulty_runs(monkeypatch: pytest.MonkeyPatch, plan: BrokerFaultPlan) -> list[PaperBroker]:
    """Runners started from here get their paper broker with `plan`; returns them."""
    brokers: list[PaperBroker] = []

    def make(engine: Engine, settings: Settings, bot_id: str, name: str,
             **options: Any) -> Any:
        broker = make_broker(engine, settings, bot_id, name, faults=plan, **options)
        assert isinstance(broker, PaperBroker)
        brokers.append(broker)
        return broker

    monkeypatch.setattr(runner_job, "make_broker", make)
    return brokers


def run_and_reconcile(engine: Engine, settings: Settings, plan: BrokerFaultPlan,
                      brokers: list[PaperBroker]) -> str:
    account_id, bot_id = make_bot(engine)
    payload = runner_payload(bot_id, start=first_bar_iso(settings))
    result = runner_job.run_runner(runner_context(engine, settings, account_id, bot_id,
                                                  payload))
    assert result["ended"] == "REPLAY_EXHAUSTED"
    plan.clear()
    manager = OrderManager(engine, bot_id=bot_id, job_id=None, broker=brokers[-1],
                           mode="PAPER", source_type="PAPER", limits=None)
    outcome = reconcile(engine, manager, "MES", actor="test").as_json()
    assert outcome["actions"] == [] and outcome["final_state"]["in_agreement"], outcome
    with engine.connect() as conn:
        statuses = set(conn.execute(sa.select(Order.status).where(Order.bot_id == bot_id))
                       .scalars())
    assert statuses <= {"FILLED", "CANCELED"}, statuses
    return bot_id


def test_a_runner_through_lost_acks_and_lost_requests_trades_as_the_backtest(
        engine: Engine, replay_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """One order entry in five loses its answer and one in ten its request: the runner
    resolves each within its bar (UNRESOLVED, query, the same id again when unknown), so it
    makes the backtest's trades exactly, and reconcile then finds nothing to do."""
    plan = BrokerFaultPlan(seed=3)
    plan.drop_ack(None, probability=0.2)
    plan.lose_request(None, probability=0.1)
    brokers = faulty_runs(monkeypatch, plan)
    fired = plan.fired
    bot_id = run_and_reconcile(engine, replay_settings, plan, brokers)
    assert {kind for _, kind in fired} == {BrokerFaultKind.DROP_ACK,
                                           BrokerFaultKind.LOSE_REQUEST}
    _backtest, expected = backtest_of(replay_settings)
    assert trades_of(engine, bot_id) == [
        (t.entry_time, t.exit_time, t.side, t.qty, t.entry_price, t.exit_price, t.pnl)
        for t in expected]


def test_a_runner_through_broker_outages_sends_late_but_never_twice(
        engine: Engine, replay_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three order entries in ten meet a disconnect: most are retried at once under the
    same client id; those whose retries all fail stay PENDING and go with the next bar.
    None is sent twice, none fills before its bar, the bot never holds more than its one
    contract, and reconcile agrees."""
    plan = BrokerFaultPlan(seed=5)
    plan.add(BrokerFaultKind.DISCONNECT, probability=0.3, operations={"submit"})
    brokers = faulty_runs(monkeypatch, plan)
    bot_id = run_and_reconcile(engine, replay_settings, plan, brokers)
    with engine.connect() as conn:
        fills = conn.execute(sa.select(Fill.filled_at, Fill.side, Fill.qty,
                                       Order.client_order_id)
                             .join(Order, Order.id == Fill.order_id)
                             .where(Fill.bot_id == bot_id)
                             .order_by(Fill.filled_at, Fill.id)).all()
    late = {f.client_order_id for f in fills
            if f.filled_at > intent_time(f.client_order_id)
            and not f.client_order_id.endswith((":SL", ":TP"))}
    assert late, "no outage outlasted the retries: the test would prove nothing"
    assert all(f.filled_at >= intent_time(f.client_order_id) for f in fills)
    position, by_bar = 0, {}
    for fill in fills:
        position += fill.qty if fill.side == "BUY" else -fill.qty
        by_bar[fill.filled_at] = position
    assert max(abs(p) for p in by_bar.values()) <= 1, "an order went twice"
