"""The runner routes: start, restart, stop and the listing, through the API.

Refusals come from two layers in one order: the action policy of the guard (kill switch,
kill state, stage, live-trading flag) and then the safe-start checks that need the store
(integrations, data, loops, circuit breaker)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from botwarden.clock import utcnow
from botwarden.data.bar_store import SYNTHETIC_DATASET, BarStore
from botwarden.data.synth import write_synthetic
from botwarden.domain.circuit_breaker import Breaker
from botwarden.domain.stages import Stage
from botwarden.domain.trading import Role
from botwarden.ids import new_id
from botwarden.store.breakers import lock_breaker, save_breaker
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, BotJob
from botwarden.workers.policy import breaker_policy
from tests.api.conftest import VALID_BOT, ApiUser


def _set_bot(app: FastAPI, bot_id: str, **values: Any) -> None:
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        for key, value in values.items():
            setattr(bot, key, value)
        session.commit()


def _bars(app: FastAPI) -> None:
    write_synthetic(BarStore.from_settings(app.state.settings), "MES", 2)


def _run_loops(client: TestClient, admin: ApiUser) -> None:
    for task in ("supervisor", "timeout_worker"):
        response = client.post("/api/scheduler/trigger", json={"task": task},
                               headers=admin.headers)
        assert response.status_code == 200 and response.json()["ok"], response.text


def _post(client: TestClient, user: ApiUser, action: str, bot_id: str, **extra: Any) -> Response:
    return client.post(f"/api/runners/{action}", json={"bot_id": bot_id, **extra},
                       headers=user.headers)


def _refusal(response: Response) -> str:
    error = response.json()["error"]
    assert error["fix"] and error["message"] and error["trace_id"], error
    return f"{response.status_code} {error['code']}"


@pytest.fixture
def ready_bot(app: FastAPI, client: TestClient, user: ApiUser, bot_id: str) -> str:
    """A PAPER bot with bars to trade and live loops: it may start."""
    _set_bot(app, bot_id, stage=Stage.PAPER.value)
    _bars(app)
    _run_loops(client, user)
    return bot_id


def test_refusals_in_order(app: FastAPI, client: TestClient, user: ApiUser, bot_id: str) -> None:
    def start() -> Response:
        return _post(client, user, "start", bot_id)

    killed = client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD", "reason": "test"},
                         headers=user.headers)
    assert killed.status_code == 200
    assert _refusal(start()) == "409 BOT_KILLED"  # before its TRIALS stage
    assert client.post(f"/api/bots/{bot_id}/resurrect", json={},
                       headers=user.headers).status_code == 200
    assert _refusal(start()) == "409 STAGE_NOT_ELIGIBLE"
    _set_bot(app, bot_id, stage=Stage.CANARY.value)
    assert _refusal(start()) == "409 LIVE_TRADING_DISABLED"
    _set_bot(app, bot_id, is_trading_enabled=True)
    assert _refusal(start()) == "424 INTEGRATION_KEY_MISSING"  # no Tradovate keys here
    _set_bot(app, bot_id, stage=Stage.PAPER.value, is_trading_enabled=False)
    assert _refusal(start()) == "424 DATA_UNAVAILABLE"
    _bars(app)
    assert _refusal(start()) == "409 AUTONOMY_BLOCKED"
    _run_loops(client, user)
    now = utcnow()
    with write_transaction(app.state.engine) as conn:
        lock_breaker(conn, bot_id, now)
        save_breaker(conn, bot_id, Breaker((now,) * 3, now), now=now,
                     policy=breaker_policy(app.state.settings))
    assert _refusal(start()) == "409 CIRCUIT_OPEN"
    assert _refusal(_post(client, user, "restart", bot_id)) == "409 CIRCUIT_OPEN"
    with write_transaction(app.state.engine) as conn:
        save_breaker(conn, bot_id, Breaker(), now=now, policy=breaker_policy(app.state.settings))
    assert start().status_code == 202
    # Every refusal is in the audit log with its code; the start that passed as ALLOW.
    audit = client.get("/api/audit-log?action=RUNNER_START", headers=user.headers).json()
    assert [(a["decision"], a["reason_code"]) for a in reversed(audit)] == [
        ("DENY", "BOT_KILLED"), ("DENY", "STAGE_NOT_ELIGIBLE"), ("DENY", "LIVE_TRADING_DISABLED"),
        ("DENY", "INTEGRATION_KEY_MISSING"), ("DENY", "DATA_UNAVAILABLE"),
        ("DENY", "AUTONOMY_BLOCKED"), ("DENY", "CIRCUIT_OPEN"), ("ALLOW", "ALLOWED")]


def test_the_account_kill_switch_refuses_a_start(client: TestClient, user: ApiUser,
                                                 ready_bot: str) -> None:
    assert client.post("/api/kill-switch", json={}, headers=user.headers).status_code == 200
    # The guard answers first, with the policy's code for the switch.
    assert _refusal(_post(client, user, "start", ready_bot)) == "409 ACCOUNT_KILL_SWITCH_ENGAGED"


def test_start_answers_202_and_queues_the_job(app: FastAPI, client: TestClient, user: ApiUser,
                                              ready_bot: str) -> None:
    response = _post(client, user, "start", ready_bot)
    assert response.status_code == 202, response.text
    body = response.json()
    payload = {"bot_id": ready_bot, "mode": "PAPER", "broker": "paper", "provider": "replay",
               "dataset": SYNTHETIC_DATASET, "symbol": "MES", "timeframe": "1m", "speed": 60.0,
               "start": None}
    assert body == {"job_id": body["job_id"], "bot_id": ready_bot, "status": "QUEUED",
                    "mode": "PAPER", "broker": "paper", "payload": payload,
                    "replaced_job_id": None}
    with app.state.session_factory() as session:
        job = session.get(BotJob, body["job_id"])
        assert (job.job_type, job.status, job.bot_id, job.account_id, job.payload) == (
            "RUNNER", "QUEUED", ready_bot, user.account_id, payload)
        assert job.trace_id == response.headers["X-Trace-Id"]
    listed = client.get(f"/api/jobs?bot_id={ready_bot}&type=RUNNER", headers=user.headers)
    assert [j["id"] for j in listed.json()] == [body["job_id"]]

    again = _post(client, user, "start", ready_bot)
    assert _refusal(again) == "409 RUNNER_ALREADY_ACTIVE"
    assert "restart" in again.json()["error"]["fix"]
    assert again.json()["error"]["job_id"] == body["job_id"]


def test_restart_replaces_and_stop_cancels(app: FastAPI, client: TestClient, user: ApiUser,
                                           ready_bot: str) -> None:
    first = _post(client, user, "start", ready_bot).json()
    restarted = _post(client, user, "restart", ready_bot)
    assert restarted.status_code == 202, restarted.text
    second = restarted.json()
    assert second["replaced_job_id"] == first["job_id"] and second["job_id"] != first["job_id"]
    assert second["payload"] == first["payload"]
    old = client.get(f"/api/jobs/{first['job_id']}", headers=user.headers).json()
    assert (old["status"], old["status_reason_code"]) == ("CANCELED", "CANCELED_BY_USER")
    events = client.get(f"/api/jobs/{first['job_id']}/events", headers=user.headers).json()
    assert [e["to_status"] for e in events] == ["QUEUED", "CANCELED"]

    stopped = _post(client, user, "stop", ready_bot, reason="maintenance")
    assert stopped.status_code == 200, stopped.text
    assert (stopped.json()["job_id"], stopped.json()["status"],
            stopped.json()["status_reason"]) == (second["job_id"], "CANCELED", "maintenance")
    assert _refusal(_post(client, user, "stop", ready_bot)) == "409 RUNNER_NOT_ACTIVE"
    assert client.get("/api/runners", headers=user.headers).json() == []


def test_listing(client: TestClient, user: ApiUser, ready_bot: str,
                 make_user: Callable[..., ApiUser]) -> None:
    job_id = _post(client, user, "start", ready_bot).json()["job_id"]
    response = client.get("/api/runners", headers=user.headers)
    assert response.status_code == 200
    (runner,) = response.json()
    assert {k: runner[k] for k in ("job_id", "bot_id", "bot_name", "stage", "mode", "broker",
                                   "provider", "status", "active", "attempts", "positions",
                                   "last_bar_time", "last_heartbeat_at",
                                   "heartbeat_age_seconds", "started_at")} == {
        "job_id": job_id, "bot_id": ready_bot, "bot_name": VALID_BOT["name"], "stage": "PAPER",
        "mode": "PAPER", "broker": "paper", "provider": "replay", "status": "QUEUED",
        "active": True, "attempts": 0, "positions": [], "last_bar_time": None,
        "last_heartbeat_at": None, "heartbeat_age_seconds": None, "started_at": None}
    _post(client, user, "stop", ready_bot)
    assert client.get("/api/runners", headers=user.headers).json() == []
    finished = client.get("/api/runners?include_finished=true", headers=user.headers).json()
    assert [(r["job_id"], r["status"], r["active"]) for r in finished] == [
        (job_id, "CANCELED", False)]
    stranger = make_user()
    assert client.get("/api/runners?include_finished=true",
                      headers=stranger.headers).json() == []


@pytest.mark.parametrize("action", ["start", "restart", "stop"])
def test_another_accounts_bot_is_not_found(client: TestClient, ready_bot: str, action: str,
                                           make_user: Callable[..., ApiUser]) -> None:
    stranger = make_user()
    for bot_id in (ready_bot, new_id()):
        assert _refusal(_post(client, stranger, action, bot_id)) == "404 NOT_FOUND"


@pytest.mark.parametrize("action", ["start", "restart", "stop"])
def test_a_viewer_may_look_but_not_act(client: TestClient, user: ApiUser, ready_bot: str,
                                       action: str, make_user: Callable[..., ApiUser]) -> None:
    if action == "stop":
        assert _post(client, user, "start", ready_bot).status_code == 202
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    assert _refusal(_post(client, viewer, action, ready_bot)) == "403 ROLE_FORBIDDEN"
    assert client.get("/api/runners", headers=viewer.headers).status_code == 200
    trader = make_user(Role.TRADER, account_id=user.account_id)
    assert _post(client, trader, action, ready_bot).status_code in (200, 202)


def test_bad_bodies(client: TestClient, user: ApiUser, ready_bot: str) -> None:
    for body in ({"bot_id": ready_bot, "mode": "LIVE"}, {"bot_id": ready_bot, "reason": 5}):
        response = client.post("/api/runners/stop", json=body, headers=user.headers)
        assert _refusal(response) == "422 INVALID_REQUEST", body
    for body in ({}, {"bot_id": 5}, {"bot_id": ""}):  # no bot to act on
        response = client.post("/api/runners/start", json=body, headers=user.headers)
        assert _refusal(response) == "404 NOT_FOUND", body


def test_a_stale_loop_blocks_again(app: FastAPI, client: TestClient, user: ApiUser,
                                   ready_bot: str) -> None:
    from botwarden.store.models import SchedulerTask

    with app.state.session_factory() as session:
        task = session.get(SchedulerTask, "timeout_worker")
        task.last_run_at = utcnow() - timedelta(hours=1)
        session.commit()
    response = _post(client, user, "start", ready_bot)
    assert _refusal(response) == "409 AUTONOMY_BLOCKED"
    assert "timeout_worker" in response.json()["error"]["message"]
