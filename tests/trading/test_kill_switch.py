"""The account kill switch with 20 trading bots (issue 6): new orders are blocked within 1 s,
every bot is flat within 5 s (our positions and the broker's), and the switch survives a
restart. The runners are threads of this process, as a worker hosts them, each on replayed
bars at two a second."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from botwarden.api.app import create_app
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.risk import MarketFacts
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.domain.trading import OrderType, Side
from botwarden.store.models import Account, Order, Position
from botwarden.trading.broker_factory import make_broker
from botwarden.trading.jobs import install_execution_hooks
from botwarden.trading.order_manager import OrderManager, RiskContext
from botwarden.trading.order_store import NewOrder
from botwarden.trading.runner_job import run_runner
from tests.api.conftest import ApiUser, app, client, make_user, user  # noqa: F401 (fixtures)
from tests.trading.kill_support import (
    OPEN_STATUSES,
    WIDE_BRACKET,
    broker_position,
    holds_with_exits,
    is_flatten,
    killed_denials,
    mid_session_start,
    orders,
    replay_settings,  # noqa: F401 (fixture)
    start_runner,
    wait_until,
)
from tests.trading.runner_support import GENEROUS, make_bot, runner_context, runner_payload

BOTS = 20
SPEED = 120.0  # a one-minute bar every half second, per runner
BLOCKED_WITHIN = 1.0  # issue 6's acceptance bounds, in seconds
FLAT_WITHIN = 5.0


@pytest.fixture(autouse=True)
def _execution_hooks() -> None:
    install_execution_hooks()


def _now_flat(engine: Engine, settings: Settings, bots: set[str]) -> set[str]:
    """Which of `bots` are flat: no position and no open order of ours (two queries for
    all), then the broker's book of those (a poll must not load the machine it measures)."""
    with engine.connect() as conn:
        held = set(conn.execute(sa.select(Position.bot_id).where(Position.bot_id.in_(bots))
                                .group_by(Position.bot_id).having(sa.func.sum(Position.qty) != 0)
                                ).scalars())
        working = set(conn.execute(sa.select(Order.bot_id).where(
            Order.bot_id.in_(bots), Order.status.in_(OPEN_STATUSES)).distinct()).scalars())
    return {b for b in bots - held - working if broker_position(engine, settings, b) == 0}


def _an_entry_now(engine: Engine, settings: Settings, bot_id: str) -> tuple[str | None, str]:
    """What the risk engine answers an entry sent for `bot_id` right now, by any path."""
    manager = OrderManager(engine, bot_id=bot_id, job_id=None,
                           broker=make_broker(engine, settings, bot_id, "paper"),
                           mode="PAPER", source_type="PAPER",
                           limits=parse_risk_limits(dict(GENEROUS, **WIDE_BRACKET)))
    now = utcnow()
    facts = MarketFacts(now=now, last_price=Decimal(5000), last_bar_time=now, bar_seconds=60,
                        session_open=True, minutes_to_close=None,
                        minutes_to_high_impact_event=None)
    one = Decimal(1)
    placed = manager.place(NewOrder(f"{bot_id[:20]}-late-entry", "MES", Side.BUY, 1,
                                    OrderType.MARKET, reason="test"),
                           RiskContext(facts, Decimal(0), one, one, one, one, one))
    return (None if placed.status is None else placed.status.value), placed.verdict.code


def test_kill_switch_blocks_and_flattens_twenty_bots_and_survives_a_restart(
    engine: Engine, replay_settings: Settings, client: TestClient,  # noqa: F811
    user: ApiUser,  # noqa: F811
) -> None:
    start = mid_session_start(replay_settings)
    bots = [make_bot(engine, account_id=user.account_id, risk=WIDE_BRACKET,
                     params={"fast": 2 + i % 4, "slow": 8 + i % 5})[1] for i in range(BOTS)]
    runners = [start_runner(engine, replay_settings, user.account_id, bot_id, speed=SPEED,
                            start=start) for bot_id in bots]
    wait_until(lambda: all(holds_with_exits(engine, b) for b in bots), 120,
               "every bot holding a position with its two exits working", runners)

    began = time.monotonic()
    response = client.post("/api/kill-switch", json={"reason": "kill switch test"},
                           headers=user.headers)
    answered = utcnow()
    assert response.status_code == 200, response.text
    assert sorted(response.json()["bots_killed"]) == sorted(bots)
    flat_after: dict[str, float] = {}
    deadline = began + FLAT_WITHIN
    while len(flat_after) < BOTS and time.monotonic() < deadline:
        for bot_id in _now_flat(engine, replay_settings, set(bots) - set(flat_after)):
            flat_after[bot_id] = time.monotonic() - began
        time.sleep(0.05)
    results = [runner.join(30) for runner in runners]

    with engine.connect() as conn:
        switched = conn.execute(sa.select(Account.kill_switch_at).where(
            Account.id == user.account_id)).scalar_one()
        accepted = conn.execute(sa.select(sa.func.max(Order.created_at)).where(
            Order.bot_id.in_(bots), Order.parent_client_order_id.is_(None),
            ~Order.client_order_id.contains("-halt-"))).scalar_one()
    denials = [d for b in bots for d in killed_denials(engine, b, switched)]
    last_accepted = (accepted - switched).total_seconds()  # < 0: every one came before
    first_denial = min(d.created_at for d in denials) - switched
    print(f"\nkill switch, {BOTS} bots, {engine.dialect.name}: request "
          f"{(answered - switched).total_seconds():.3f} s; last accepted order "
          f"{last_accepted:+.3f} s from the switch; first KILLED denial after "
          f"{first_denial.total_seconds():.3f} s ({len(denials)} denials); flat: slowest "
          f"{max(flat_after.values(), default=float('nan')):.3f} s, median "
          f"{sorted(flat_after.values())[len(flat_after) // 2] if flat_after else 0:.3f} s")

    # Blocked: no order was accepted after the switch but the flattens (and the exits the
    # broker opened for an entry accepted before it, which the halt cancelled).
    assert last_accepted <= BLOCKED_WITHIN
    for bot_id in bots:
        every = orders(engine, bot_id)
        late = [o for o in every if o.created_at > answered and not is_flatten(o)]
        assert all(o.parent_client_order_id and o.status == "CANCELED" for o in late), late
        assert killed_denials(engine, bot_id, switched), f"{bot_id}: no entry was denied"
    assert {_an_entry_now(engine, replay_settings, b) for b in bots} == {(None, "KILLED")}
    # Flat, ours and the broker's, every bot, within the bound; each runner ended flat.
    assert sorted(flat_after) == sorted(bots), f"flat within {FLAT_WITHIN} s: {len(flat_after)}"
    assert max(flat_after.values()) <= FLAT_WITHIN
    assert {(r["ended"], r["flat"]) for r in results} == {("HALTED", True)}

    # A restart: a new application on the same database still has the switch engaged,
    # every bot HARD_KILLED by it, and a runner for any of them refuses to start.
    restarted = create_app(replay_settings)
    try:
        with TestClient(restarted) as fresh:
            switch = fresh.get("/api/kill-switch", headers=user.headers).json()
            assert switch["engaged"] is True
            for bot_id in bots:
                state = fresh.get(f"/api/bots/{bot_id}/kill-state", headers=user.headers).json()
                assert (state["state"], state["trigger_code"]) == ("HARD_KILLED",
                                                                   "ACCOUNT_KILL_SWITCH")
    finally:
        restarted.state.engine.dispose()
    ctx = runner_context(engine, replay_settings, user.account_id, bots[0],
                         runner_payload(bots[0], start=start, speed=SPEED))
    with pytest.raises(DomainError) as refused:
        run_runner(ctx)
    assert refused.value.code == "BOT_KILLED"
