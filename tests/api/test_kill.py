"""Kill engine invariants through the API: idempotence, append-only events, state derivable
from events, QUARANTINED needs a step-up, the account switch halts every bot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botwarden.clock import utcnow
from botwarden.domain.kill import KillEventType, KillMode, KillState, TriggerCode, fold_events
from botwarden.services.kill import kill_bot
from botwarden.store.models import Bot, KillEvent, User
from tests.api.conftest import VALID_BOT, ApiUser


def _events(client: TestClient, user: ApiUser, bot_id: str) -> list[dict]:
    response = client.get(f"/api/bots/{bot_id}/kill-events", headers=user.headers)
    assert response.status_code == 200
    return response.json()


def test_kill_is_idempotent_and_resurrect_needs_a_kill(
    client: TestClient, user: ApiUser, bot_id: str
) -> None:
    first = client.post(f"/api/bots/{bot_id}/kill", json={"reason": "test", "mode": "SOFT"},
                        headers=user.headers)
    assert first.status_code == 200, first.text
    assert first.json()["event"]["state"] == "SOFT_KILLED"
    again = client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD"}, headers=user.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_KILLED"
    assert len(_events(client, user, bot_id)) == 1
    state = client.get(f"/api/bots/{bot_id}/kill-state", headers=user.headers).json()
    assert state["state"] == "SOFT_KILLED" and state["trading_state"] == "REDUCING"
    assert state["trigger_code"] == "MANUAL_KILL" and state["reason"] == "test"
    assert client.post(f"/api/bots/{bot_id}/resurrect", json={},
                       headers=user.headers).status_code == 200
    not_killed = client.post(f"/api/bots/{bot_id}/resurrect", json={}, headers=user.headers)
    assert not_killed.status_code == 409 and not_killed.json()["error"]["code"] == "NOT_KILLED"
    events = _events(client, user, bot_id)
    assert [e["event_type"] for e in events] == ["RESURRECT", "KILL"]  # newest first
    audit = client.get("/api/audit-log?action=KILL", headers=user.headers).json()
    assert {a["decision"] for a in audit} == {"ALLOW", "DENY"}
    assert all(a["trace_id"] for a in audit)


def test_quarantined_resurrect_needs_step_up(
    app: FastAPI, client: TestClient, user: ApiUser, bot_id: str
) -> None:
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        kill_bot(session, bot, mode=KillMode.HARD, trigger=TriggerCode.RECONCILE_MISMATCH,
                 reason="drift", actor="reconcile")
        session.commit()
    denied = client.post(f"/api/bots/{bot_id}/resurrect", json={}, headers=user.headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "STEP_UP_REQUIRED"
    with app.state.session_factory() as session:
        session.get(User, user.user_id).step_up_until = utcnow() + timedelta(minutes=5)
        session.commit()
    assert client.post(f"/api/bots/{bot_id}/resurrect", json={},
                       headers=user.headers).status_code == 200


def test_account_kill_switch_halts_every_bot(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    ids = [client.post("/api/bots", json=VALID_BOT, headers=user.headers).json()["id"]
           for _ in range(3)]
    client.post(f"/api/bots/{ids[0]}/kill", json={"mode": "SOFT"}, headers=user.headers)
    other = make_user()
    other_bot = client.post("/api/bots", json=VALID_BOT, headers=other.headers).json()["id"]
    response = client.post("/api/kill-switch", json={"reason": "panic"}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert sorted(response.json()["bots_killed"]) == sorted(ids)  # the SOFT one is escalated
    for bot_id in ids:
        assert client.get(f"/api/bots/{bot_id}/kill-state",
                          headers=user.headers).json()["state"] == "HARD_KILLED"
    other_state = client.get(f"/api/bots/{other_bot}", headers=other.headers).json()
    assert other_state["kill_state"] == "NONE"
    # While engaged, nothing comes back to life.
    revived = client.post(f"/api/bots/{ids[1]}/resurrect", json={}, headers=user.headers)
    assert revived.status_code == 409
    assert revived.json()["error"]["code"] == "ACCOUNT_KILL_SWITCH_ENGAGED"
    # Releasing needs a step-up.
    release = client.post("/api/kill-switch/release", headers=user.headers)
    assert release.json()["error"]["code"] == "STEP_UP_REQUIRED"


def test_kill_switch_is_admin_only(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    from botwarden.domain.trading import Role

    trader = make_user(Role.TRADER, account_id=user.account_id)
    response = client.post("/api/kill-switch", json={}, headers=trader.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "ROLE_FORBIDDEN"


ACTIONS = st.lists(st.sampled_from(["SOFT", "HARD", "RESURRECT", "QUARANTINE"]), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(actions=ACTIONS)
def test_state_is_always_the_fold_of_events(
    app: FastAPI, client: TestClient, user: ApiUser, actions: list[str]
) -> None:
    bot_id = client.post("/api/bots", json=VALID_BOT, headers=user.headers).json()["id"]
    with app.state.session_factory() as session:
        session.get(User, user.user_id).step_up_until = utcnow() + timedelta(minutes=5)
        session.commit()
    for action in actions:
        if action == "RESURRECT":
            client.post(f"/api/bots/{bot_id}/resurrect", json={}, headers=user.headers)
        elif action == "QUARANTINE":
            with app.state.session_factory() as session:
                bot = session.get(Bot, bot_id)
                if bot.kill_state == "NONE":
                    kill_bot(session, bot, mode=KillMode.HARD,
                             trigger=TriggerCode.RECONCILE_MISMATCH, reason="x", actor="t")
                    session.commit()
        else:
            client.post(f"/api/bots/{bot_id}/kill", json={"mode": action}, headers=user.headers)
    with app.state.session_factory() as session:
        rows = session.execute(sa.select(KillEvent.event_type, KillEvent.state)
                               .where(KillEvent.bot_id == bot_id)
                               .order_by(KillEvent.created_at, KillEvent.id)).all()
        folded = fold_events([(KillEventType(t), KillState(s)) for t, s in rows])
        assert session.get(Bot, bot_id).kill_state == folded.value
        # Events alternate: never two kills or two resurrects in a row.
        types = [t for t, _ in rows]
        assert all(a != b for a, b in zip(types, types[1:], strict=False))
