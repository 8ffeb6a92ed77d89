"""The kill engine acting on the market: a HARD kill cancels a bot's working orders,
flattens through the broker and verifies it flat, whether its runner is alive (the runner
does it) or not (the kill engine's hook does it); a SOFT kill lets exits through and no
entry."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.instruments import get_instrument
from botwarden.domain.kill import KillMode, TriggerCode
from botwarden.research.spec import DEFAULT_SLIPPAGE_TICKS
from botwarden.services.kill import kill_bot, run_halt_hooks
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, RunnerState, Trace
from botwarden.trading import runner_job
from botwarden.trading.broker_factory import account_key
from botwarden.trading.brokers import PaperBroker, SqlStateStore
from botwarden.trading.brokers.base import Ack, BrokerRejected, OrderRequest
from botwarden.trading.jobs import install_execution_hooks
from tests.api.conftest import ApiUser, app, client, make_user, user  # noqa: F401 (fixtures)
from tests.trading.kill_support import (
    WIDE_BRACKET,
    LiveRunner,
    broker_position,
    holds_with_exits,
    is_flatten,
    killed_denials,
    mid_session_start,
    open_orders,
    orders,
    our_position,
    replay_settings,  # noqa: F401 (fixture)
    start_runner,
    wait_until,
)
from tests.trading.runner_support import make_bot

FAST = 1200.0  # 20 one-minute bars a second


@pytest.fixture(autouse=True)
def _execution_hooks() -> None:
    install_execution_hooks()  # what a worker process (or `serve`) installs at start


def _live_bot(engine: Engine, settings: Settings, account_id: str,
              ) -> tuple[str, LiveRunner]:
    _, bot_id = make_bot(engine, account_id=account_id, risk=WIDE_BRACKET)
    live = start_runner(engine, settings, account_id, bot_id, speed=FAST,
                        start=mid_session_start(settings))
    wait_until(lambda: holds_with_exits(engine, bot_id), 60,
               "a position with its stop-loss and profit target working", [live])
    return bot_id, live


def _orders_after(engine: Engine, bot_id: str, moment: datetime) -> list[Any]:
    """Orders persisted after `moment` other than the flatten, leaving out exits the broker
    opened for an entry accepted before it (the halt cancels those)."""
    every = orders(engine, bot_id)
    created = {o.client_order_id: o.created_at for o in every}
    return [o for o in every if o.created_at > moment and not is_flatten(o)
            and not (o.parent_client_order_id
                     and created.get(o.parent_client_order_id, moment) < moment)]


def _orders_decided_after(engine: Engine, bot_id: str, moment: datetime) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Trace.detail).where(
            Trace.bot_id == bot_id, Trace.kind == "DECISION", Trace.decision == "ORDER",
            Trace.created_at > moment)).all()
    return [r.detail["order"]["client_order_id"] for r in rows]


def _assert_flat(engine: Engine, settings: Settings, bot_id: str) -> None:
    assert our_position(engine, bot_id) == 0
    assert broker_position(engine, settings, bot_id) == 0
    assert open_orders(engine, bot_id) == 0


def test_hard_kill_through_the_api_is_carried_out_by_the_runner(
    engine: Engine, replay_settings: Settings, client: TestClient, user: ApiUser,  # noqa: F811
) -> None:
    bot_id, live = _live_bot(engine, replay_settings, user.account_id)
    working = [o for o in orders(engine, bot_id) if o.status == "WORKING"]
    before = utcnow()
    started = time.monotonic()
    response = client.post(f"/api/bots/{bot_id}/kill",
                           json={"mode": "HARD", "reason": "halt test"}, headers=user.headers)
    answered = utcnow()
    assert response.status_code == 200, response.text
    assert {"bot_id": bot_id, "delegated_to_runner": live.ctx.job_id} in response.json()["halt"]
    result = live.join(30)
    print(f"\nHARD kill to runner ended flat: {time.monotonic() - started:.3f} s")
    assert (result["ended"], result["flat"], result["halted"]) == ("HALTED", True, True)
    _assert_flat(engine, replay_settings, bot_id)
    final = {o.client_order_id: o for o in orders(engine, bot_id)}
    exits = [o.client_order_id for o in working if o.parent_client_order_id]
    assert len(exits) >= 2 and all(final[c].status == "CANCELED" for c in exits)
    [flatten] = [o for o in final.values() if is_flatten(o)]
    assert (flatten.status, flatten.reduce_only, flatten.filled_qty) == ("FILLED", True,
                                                                        flatten.qty)
    # After the kill: nothing but the flatten was accepted; the strategy's wishes were denied.
    assert _orders_after(engine, bot_id, answered) == []
    assert set(_orders_decided_after(engine, bot_id, answered)) <= {flatten.client_order_id}
    assert killed_denials(engine, bot_id, before)  # the entry tried once it was flat
    events = client.get(f"/api/bots/{bot_id}/kill-events", headers=user.headers).json()
    assert [(e["event_type"], e["state"], e["trigger_code"]) for e in events] == [
        ("KILL", "HARD_KILLED", "MANUAL_KILL")]


class RefusesTheFirstFlatten(PaperBroker):
    """A paper broker that rejects the first flatten it is sent (as a broker may, or as the
    risk engine does while the market is closed)."""

    refused: list[str]

    def submit(self, request: OrderRequest) -> Ack:
        if "-halt-" in request.client_order_id and not self.refused:
            self.refused.append(request.client_order_id)
            raise BrokerRejected("ORDER_REJECTED", "the first flatten is refused")
        return super().submit(request)


def test_a_refused_flatten_is_sent_again_until_the_bot_is_flat(
    engine: Engine, replay_settings: Settings,  # noqa: F811
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused: list[str] = []

    def make_broker(engine: Engine, _settings: Settings, bot_id: str, _name: str,
                    ) -> RefusesTheFirstFlatten:
        broker = RefusesTheFirstFlatten(account_key("paper", bot_id), SqlStateStore(engine),
                                        slippage_ticks=DEFAULT_SLIPPAGE_TICKS)
        broker.refused = refused
        return broker

    monkeypatch.setattr(runner_job, "make_broker", make_broker)
    _, bot_id = make_bot(engine, risk=WIDE_BRACKET)
    with Session(engine) as session:
        account_id = session.get(Bot, bot_id).account_id  # type: ignore[union-attr]
    live = start_runner(engine, replay_settings, account_id, bot_id, speed=FAST,
                        start=mid_session_start(replay_settings))
    wait_until(lambda: holds_with_exits(engine, bot_id), 60, "a position with its exits", [live])
    # The kill engine's path as a detector takes it: the kill committed, then the hooks.
    with write_transaction(engine) as conn, Session(bind=conn) as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        kill_bot(session, bot, mode=KillMode.HARD, trigger=TriggerCode.MANUAL_KILL,
                 reason="hooks", actor="test")
        session.flush()
    with session_factory() as session:
        bot = session.get(Bot, bot_id)
        assert bot is not None
        reports = run_halt_hooks(session, bot, None)
    assert {"bot_id": bot_id, "delegated_to_runner": live.ctx.job_id} in reports
    result = live.join(30)
    assert (result["ended"], result["flat"]) == ("HALTED", True)
    _assert_flat(engine, replay_settings, bot_id)
    flattens = [(o.client_order_id, o.status) for o in orders(engine, bot_id) if is_flatten(o)]
    assert len(refused) == 1 and flattens[0] == (refused[0], "REJECTED")
    assert [status for _, status in flattens[1:]] == ["FILLED"]


def test_runnerless_halt_cancels_and_flattens_at_the_last_price(
    engine: Engine, replay_settings: Settings, client: TestClient, user: ApiUser,  # noqa: F811
) -> None:
    _, bot_id = make_bot(engine, account_id=user.account_id, risk=WIDE_BRACKET)
    start = mid_session_start(replay_settings)
    end = datetime.fromisoformat(start) + timedelta(minutes=40)
    # Paper trading fast-forwarded on 40 bars of history: the runner ends, its job is done,
    # and the bot holds a position with working exits that nobody is watching.
    live = start_runner(engine, replay_settings, user.account_id, bot_id, speed=None,
                        start=start, end=end.isoformat())
    assert live.join(120)["ended"] == "REPLAY_EXHAUSTED"
    held = our_position(engine, bot_id)
    assert held != 0 and broker_position(engine, replay_settings, bot_id) == held
    working = open_orders(engine, bot_id)
    assert working >= 2
    with engine.connect() as conn:
        last_price = conn.execute(sa.select(RunnerState.last_price).where(
            RunnerState.bot_id == bot_id)).scalar_one()
    response = client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD"},
                           headers=user.headers)
    assert response.status_code == 200, response.text
    [report] = [r for r in response.json()["halt"] if r["bot_id"] == bot_id]
    assert report["cancelled"] == working
    assert (report["position_after"], report["broker_position_after"], report["flat"]) == (
        0, 0, True)
    _assert_flat(engine, replay_settings, bot_id)
    [flatten] = [o for o in orders(engine, bot_id) if is_flatten(o)]
    assert flatten.client_order_id == report["flatten_order"]
    assert (flatten.status, flatten.qty) == ("FILLED", abs(held))
    # Closed at the last bar the runner saw, plus the paper broker's slippage, against us.
    slip = get_instrument("MES").tick_size * DEFAULT_SLIPPAGE_TICKS
    expected = Decimal(last_price) - slip if held > 0 else Decimal(last_price) + slip
    assert Decimal(flatten.avg_fill_price) == expected


def test_soft_kill_denies_entries_and_lets_exits_through(
    engine: Engine, replay_settings: Settings, client: TestClient, user: ApiUser,  # noqa: F811
) -> None:
    bot_id, live = _live_bot(engine, replay_settings, user.account_id)
    response = client.post(f"/api/bots/{bot_id}/kill", json={"mode": "SOFT"},
                           headers=user.headers)
    answered = utcnow()
    assert response.status_code == 200, response.text
    assert response.json()["halt"] == []

    def exited_and_denied() -> bool:
        exits = [o for o in _orders_after(engine, bot_id, answered)
                 if o.parent_client_order_id is None and o.status == "FILLED"]
        return bool(exits) and bool(killed_denials(engine, bot_id, answered))

    wait_until(exited_and_denied, 60, "a strategy exit filled and an entry denied", [live])
    live.ctx.request_shutdown()
    assert live.join(30)["ended"] == "STOPPED"
    after = _orders_after(engine, bot_id, answered)
    assert after and all(o.reduce_only for o in after)  # exits only, never an entry
    assert our_position(engine, bot_id) == 0
    assert broker_position(engine, replay_settings, bot_id) == 0
    denial = killed_denials(engine, bot_id, answered)[0]
    assert denial.detail["verdict"] == "KILLED"
