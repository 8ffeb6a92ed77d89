"""Every injected broker fault, and how each resolves through UNRESOLVED, query_order and the
reconcile diff without a duplicate order."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from botwarden.data.integrations.status import IntegrationState, StatusPolicy, apply_failure
from botwarden.data.providers.base import CallRecord
from botwarden.data.providers.errors import ErrorCode, Health
from botwarden.domain.reconcile import ActionKind, OurOrder, diff
from botwarden.domain.trading import OrderStatus, Side
from botwarden.trading.brokers import (
    BrokerDisconnected,
    BrokerFaultKind,
    BrokerFaultPlan,
    BrokerRejected,
    BrokerTimeout,
    MemoryStateStore,
    PaperBroker,
)
from tests.trading.brokers.helpers import bar, market


class Recorder:
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def on_call(self, record: CallRecord) -> None:
        self.calls.append(record)


def broker_with(plan: BrokerFaultPlan, **options: object) -> PaperBroker:
    return PaperBroker("acct", MemoryStateStore(), faults=plan, **options)  # type: ignore[arg-type]


def test_dropped_ack_order_exists_fills_and_is_not_duplicated() -> None:
    broker = broker_with(BrokerFaultPlan().drop_ack())
    with pytest.raises(BrokerTimeout):
        broker.submit(market("c", Side.BUY))
    # the caller marks it UNRESOLVED and asks: the broker has it
    report = broker.query_order("c")
    assert report is not None and report.status is OrderStatus.WORKING
    resent = broker.submit(market("c", Side.BUY))  # even a resend creates nothing new
    assert resent.duplicate and resent.broker_order_id == report.broker_order_id
    fills = broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    assert [f.client_order_id for f in fills] == ["c"]
    assert broker.position("MES").qty == 1 and len(broker.open_orders()) == 0


def test_dropped_ack_resolves_through_reconcile() -> None:
    broker = broker_with(BrokerFaultPlan().drop_ack())
    with pytest.raises(BrokerTimeout):
        broker.submit(market("c", Side.BUY, qty=2))
    broker.on_bar("MES", bar(0, 100, 101, 99, 100))
    ours = [OurOrder("c", OrderStatus.UNRESOLVED, 2, 0)]
    report = broker.query_order("c")
    assert report is not None
    result = diff(ours, 0, frozenset(), [report.as_broker_order()],
                  [f.as_broker_fill() for f in broker.fills()], broker.position("MES").qty,
                  {"c": 1})
    assert [a.kind for a in result.actions] == [ActionKind.APPLY_FILL, ActionKind.ADOPT_STATUS]
    assert result.fixable and result.expected_position == 2


def test_lost_request_leaves_nothing_and_reconcile_marks_it_rejected() -> None:
    broker = broker_with(BrokerFaultPlan().lose_request())
    with pytest.raises(BrokerTimeout):
        broker.submit(market("c", Side.BUY))
    assert broker.query_order("c") is None
    result = diff([OurOrder("c", OrderStatus.UNRESOLVED, 1, 0)], 0, frozenset(), [], [], 0,
                  {"c": 1})
    assert [a.kind for a in result.actions] == [ActionKind.MARK_REJECTED]
    assert broker.on_bar("MES", bar(0, 100, 101, 99, 100)) == []


def test_injected_rejection_is_recorded_with_its_code() -> None:
    broker = broker_with(BrokerFaultPlan().reject("MaxPosLimitReached"))
    with pytest.raises(BrokerRejected) as caught:
        broker.submit(market("c", Side.BUY))
    assert caught.value.code == "MaxPosLimitReached"
    report = broker.query_order("c")
    assert report is not None and report.status is OrderStatus.REJECTED
    assert report.reject_code == "MaxPosLimitReached"
    with pytest.raises(BrokerRejected):  # the same id stays rejected
        broker.submit(market("c", Side.BUY))
    assert broker.submit(market("d", Side.BUY)).status is OrderStatus.WORKING  # fault used up


def test_disconnect_for_n_calls_reaches_nothing() -> None:
    broker = broker_with(BrokerFaultPlan().disconnect(calls=3))
    for call in (lambda: broker.submit(market("c", Side.BUY)),
                 lambda: broker.query_order("c"), broker.open_orders):
        with pytest.raises(BrokerDisconnected):
            call()
    assert broker.query_order("c") is None
    assert not broker.submit(market("c", Side.BUY)).duplicate  # safe to send again


def test_disconnect_for_a_time_window() -> None:
    now = [datetime(2025, 1, 6, 15, 0, tzinfo=UTC)]
    plan = BrokerFaultPlan(clock=lambda: now[0]).disconnect(
        between=(now[0], now[0] + timedelta(seconds=30)))
    broker = broker_with(plan, clock=lambda: now[0])
    with pytest.raises(BrokerDisconnected):
        broker.position("MES")
    now[0] += timedelta(seconds=29)
    with pytest.raises(BrokerDisconnected):
        broker.fills()
    now[0] += timedelta(seconds=1)
    assert broker.fills() == []


def test_the_market_goes_on_while_we_are_disconnected() -> None:
    broker = broker_with(BrokerFaultPlan().disconnect(calls=1))
    plan_free = broker.faults
    broker.faults = None
    broker.submit(market("c", Side.BUY))
    broker.faults = plan_free
    assert len(broker.on_bar("MES", bar(0, 100, 101, 99, 100))) == 1  # not faulted
    with pytest.raises(BrokerDisconnected):
        broker.fills()
    assert len(broker.fills()) == 1


def test_delay_waits_then_answers() -> None:
    slept: list[float] = []
    broker = broker_with(BrokerFaultPlan().delay(2.5, calls=2), sleep=slept.append)
    assert broker.submit(market("c", Side.BUY)).status is OrderStatus.WORKING
    broker.query_order("c")
    broker.query_order("c")
    assert slept == [2.5, 2.5]


def test_random_faults_are_seeded_and_deterministic() -> None:
    def run(seed: int) -> list[tuple[str, BrokerFaultKind]]:
        plan = BrokerFaultPlan(seed=seed).drop_ack(None, probability=0.3)
        plan.add(BrokerFaultKind.DISCONNECT, probability=0.2)
        broker = broker_with(plan)
        for i in range(40):
            with contextlib.suppress(BrokerTimeout, BrokerDisconnected):
                broker.submit(market(f"c{i}", Side.BUY))
        return plan.fired

    assert run(7) == run(7)
    assert run(7) != run(8)
    kinds = {kind for _, kind in run(7)}
    assert kinds == {BrokerFaultKind.DROP_ACK, BrokerFaultKind.DISCONNECT}


def test_many_random_faults_never_make_a_duplicate() -> None:
    """Resend every order until it is acknowledged, whatever the faults: each client id is
    still exactly one order, and the position is exactly what was asked."""
    plan = BrokerFaultPlan(seed=3).drop_ack(None, probability=0.3)
    plan.add(BrokerFaultKind.DISCONNECT, probability=0.2)
    plan.lose_request(None, probability=0.1)
    broker = broker_with(plan)
    for i in range(60):
        while True:
            try:
                broker.submit(market(f"c{i}", Side.BUY))
                break
            except (BrokerTimeout, BrokerDisconnected):
                continue
        broker.on_bar("MES", bar(i, 100, 101, 99, 100))
    broker.faults = None
    assert broker.position("MES").qty == 60
    assert len(broker.fills()) == 60


def test_a_certain_fault_needs_an_end() -> None:
    with pytest.raises(ValueError):
        BrokerFaultPlan().add(BrokerFaultKind.DISCONNECT)


def test_calls_and_faults_reach_the_registry_status_machine() -> None:
    recorder = Recorder()
    broker = broker_with(BrokerFaultPlan().disconnect(calls=3), observer=recorder)
    for _ in range(3):
        with pytest.raises(BrokerDisconnected):
            broker.fills()
    broker.fills()
    assert [(c.provider, c.operation, c.ok) for c in recorder.calls] == [
        ("paper", "fills", False)] * 3 + [("paper", "fills", True)]
    state = IntegrationState("paper", "broker", True, Health.OK)
    for record in recorder.calls[:3]:
        assert record.error is not None and record.error.reason is ErrorCode.DISCONNECTED
        state, _ = apply_failure(state, record.error, record.at, StatusPolicy())
    assert state.status is Health.DEGRADED
