"""Stages and promotion through the API: gates read stored evidence (none -> not met),
PATCH stage, graduate, approvals and promote-live, retire, live-readiness, autonomy score,
and isolation between accounts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session

from botwarden.api.app import create_app
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.stages import Stage
from botwarden.services.accounts import create_account
from botwarden.services.accounts import issue_token as issue_api_token
from botwarden.store.models import Approval, AuditLog, Bot, BotJob, JobRunEvent, TradeLog
from tests.api.conftest import VALID_BOT, ApiUser
from tests.api.promotion_evidence import (
    NEXT,
    add_backtests,
    add_evidence_for,
    add_stage_trades,
    error,
    issue_token,
    research,
    set_stage,
    set_step_up,
    stage_of,
)

# --- no evidence ----------------------------------------------------------------------------


def test_without_evidence_every_gate_is_not_met(client: TestClient, user: ApiUser,
                                                bot_id: str, app: FastAPI) -> None:
    for stage in (Stage.TRIALS, Stage.PAPER, Stage.SHADOW, Stage.CANARY):
        set_stage(app, bot_id, stage)
        response = client.get(f"/api/bots/{bot_id}/promotion-evaluation", headers=user.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["stage"] == stage.value and body["next_stage"] == NEXT.get(stage, "LIVE")
        assert body["eligible"] is False and body["gate_profile"] == "standard"
        assert body["gates"]
        for gate in body["gates"]:
            assert gate["actual"] is None and gate["passed"] is False, gate
            assert {"id", "required", "actual", "passed", "unit"} <= set(gate)


def test_promotion_without_evidence_is_gates_not_met(client: TestClient, user: ApiUser,
                                                     bot_id: str) -> None:
    response = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "PAPER"},
                            headers=user.headers)
    assert response.status_code == 409
    body = error(response)
    assert body["code"] == "GATES_NOT_MET" and body["fix"] and body["trace_id"]
    failing = {g["id"] for g in body["gates"]}
    assert {"min_trades", "real_market_data", "autonomy_score",
            "recent_backtests_passed"} <= failing
    assert all(g["passed"] is False for g in body["gates"])
    assert client.post(f"/api/bots/{bot_id}/graduate", headers=user.headers).status_code == 409
    assert stage_of(client, user, bot_id) == "TRIALS"
    denied = client.get("/api/audit-log?decision=DENY", headers=user.headers).json()
    assert {(d["action"], d["reason_code"]) for d in denied} >= {
        ("STAGE_CHANGE", "GATES_NOT_MET"), ("GRADUATE", "GATES_NOT_MET")}


# --- the stage machine through PATCH ---------------------------------------------------------


@pytest.mark.parametrize(("target", "code"), [
    ("SHADOW", "STAGE_SKIP"), ("CANARY", "STAGE_SKIP"), ("LIVE", "USE_PROMOTE_LIVE"),
    ("RETIRED", "USE_RETIRE"), ("TRIALS", "STAGE_UNCHANGED"),
])
def test_patch_refusals(client: TestClient, user: ApiUser, bot_id: str, app: FastAPI,
                        target: str, code: str) -> None:
    add_evidence_for(app, bot_id, Stage.TRIALS)
    response = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": target},
                            headers=user.headers)
    assert response.status_code == 409 and error(response)["code"] == code
    assert stage_of(client, user, bot_id) == "TRIALS"


def test_bad_stage_is_invalid_request(client: TestClient, user: ApiUser, bot_id: str) -> None:
    for body in ({"stage": "MOON"}, {}, {"stage": "PAPER", "extra": 1}):
        response = client.patch(f"/api/bots/{bot_id}/stage", json=body, headers=user.headers)
        assert response.status_code == 422 and error(response)["code"] == "INVALID_REQUEST"


def test_evidence_promotes_one_step_and_demotion_is_free(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI
) -> None:
    add_evidence_for(app, bot_id, Stage.TRIALS)
    evaluation = client.get(f"/api/bots/{bot_id}/promotion-evaluation",
                            headers=user.headers).json()
    assert evaluation["eligible"] is True, evaluation
    assert evaluation["evidence"].startswith("backtest ")
    before = datetime.fromisoformat(
        client.get(f"/api/bots/{bot_id}", headers=user.headers).json()["created_at"])
    promoted = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "PAPER"},
                            headers=user.headers)
    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert (body["from_stage"], body["stage"], body["transition"]) == ("TRIALS", "PAPER",
                                                                       "PROMOTION")
    assert datetime.fromisoformat(body["stage_changed_at"]) >= before
    with app.state.session_factory() as session:
        row = session.scalars(sa.select(AuditLog).where(AuditLog.action == "STAGE_CHANGE",
                                                        AuditLog.decision == "ALLOW")).one()
        assert row.detail["from_stage"] == "TRIALS" and row.detail["to_stage"] == "PAPER"
        assert row.trace_id == promoted.headers["x-trace-id"]
    # PAPER has no PAPER trades of its own yet: its gates are not met.
    again = client.post(f"/api/bots/{bot_id}/graduate", headers=user.headers)
    assert again.status_code == 409 and error(again)["code"] == "GATES_NOT_MET"
    demoted = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "TRIALS"},
                           headers=user.headers)
    assert demoted.status_code == 200 and demoted.json()["transition"] == "DEMOTION"


def test_graduate_walks_the_ladder_to_canary_and_stops(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI
) -> None:
    for stage in (Stage.TRIALS, Stage.PAPER, Stage.SHADOW):
        add_evidence_for(app, bot_id, stage)
        response = client.post(f"/api/bots/{bot_id}/graduate", headers=user.headers)
        assert response.status_code == 200, response.text
        assert response.json()["stage"] == NEXT[stage].value
    add_evidence_for(app, bot_id, Stage.CANARY)
    stop = client.post(f"/api/bots/{bot_id}/graduate", headers=user.headers)
    assert stop.status_code == 409 and error(stop)["code"] == "STAGE_NOT_ELIGIBLE"
    demote = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "TRIALS"},
                          headers=user.headers)
    assert demote.status_code == 200 and demote.json()["stage"] == "TRIALS"


def test_evidence_of_other_sources_and_configs_does_not_count(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI
) -> None:
    add_backtests(app, bot_id, provider="synthetic", dataset="SYNTH")
    gates = {g["id"]: g for g in client.get(f"/api/bots/{bot_id}/promotion-evaluation",
                                            headers=user.headers).json()["gates"]}
    assert gates["real_market_data"]["actual"] is False
    assert gates["min_trades"]["passed"] is True
    set_stage(app, bot_id, Stage.PAPER)
    add_stage_trades(app, bot_id, "TEST")
    add_stage_trades(app, bot_id, "SHADOW")
    with app.state.session_factory() as session:
        session.execute(sa.update(TradeLog).values(is_invalid=True)
                        .where(TradeLog.source_type == "SHADOW"))
        session.execute(sa.update(TradeLog).values(source_type="PAPER")
                        .where(TradeLog.source_type == "SHADOW"))
        session.commit()
    body = client.get(f"/api/bots/{bot_id}/promotion-evaluation", headers=user.headers).json()
    assert all(g["actual"] is None for g in body["gates"]), body
    # A backtest of other parameters is not evidence for this bot.
    set_stage(app, bot_id, Stage.TRIALS)
    patched = client.patch(f"/api/bots/{bot_id}",
                           json={"strategy": {"kind": "sma_cross",
                                              "params": {"fast": 7, "slow": 30}}},
                           headers=user.headers)
    assert patched.status_code == 200, patched.text
    body = client.get(f"/api/bots/{bot_id}/promotion-evaluation", headers=user.headers).json()
    assert body["evidence"] == "no completed backtest"


def test_unproven_data_does_not_count(client: TestClient, user: ApiUser, bot_id: str,
                                      app: FastAPI) -> None:
    set_stage(app, bot_id, Stage.SHADOW)
    add_stage_trades(app, bot_id, "SHADOW", provider="", dataset="")
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        research(session, bot, "WALK_FORWARD", passed=True, provider="synthetic",
                 dataset="SYNTH", metrics={"consistency": 0.9, "overfit_ratio": 1.1})
        research(session, bot, "WALK_FORWARD", passed=False, metrics={
            "in_sample_sharpe": -1.0, "out_of_sample_sharpe": -2.0})
        session.commit()
    gates = {g["id"]: g for g in client.get(f"/api/bots/{bot_id}/promotion-evaluation",
                                            headers=user.headers).json()["gates"]}
    assert gates["min_trades"]["passed"] is True
    assert gates["real_market_data"]["actual"] is False  # the runner recorded no data source
    # The synthetic walk-forward is ignored; the real one has no defined overfit ratio.
    assert gates["walk_forward_consistency"]["actual"] is None
    assert gates["overfit_ratio"]["actual"] is None and not gates["overfit_ratio"]["passed"]


def test_killed_bot_is_not_promoted_but_may_be_demoted(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI
) -> None:
    add_evidence_for(app, bot_id, Stage.TRIALS)
    assert client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD"},
                       headers=user.headers).status_code == 200
    patch = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "PAPER"},
                         headers=user.headers)
    assert patch.status_code == 409 and error(patch)["code"] == "BOT_KILLED"
    graduate = client.post(f"/api/bots/{bot_id}/graduate", headers=user.headers)
    assert graduate.status_code == 409 and error(graduate)["code"] == "BOT_KILLED"
    set_stage(app, bot_id, Stage.SHADOW)
    down = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "PAPER"},
                        headers=user.headers)
    assert down.status_code == 200, down.text


# --- approvals and promote-live --------------------------------------------------------------


@pytest.fixture
def canary_bot(client: TestClient, user: ApiUser, bot_id: str, app: FastAPI) -> str:
    set_stage(app, bot_id, Stage.CANARY)
    add_evidence_for(app, bot_id, Stage.CANARY)
    return bot_id


def test_promote_live_needs_step_up_and_a_token(
    client: TestClient, user: ApiUser, canary_bot: str, app: FastAPI
) -> None:
    no_step = client.post(f"/api/bots/{canary_bot}/approvals", headers=user.headers)
    assert no_step.status_code == 403 and error(no_step)["code"] == "STEP_UP_REQUIRED"
    set_step_up(app, user.user_id, True)
    token = issue_token(client, user, canary_bot)
    evaluation = client.get(f"/api/bots/{canary_bot}/promotion-evaluation",
                            headers=user.headers).json()
    assert evaluation["eligible"] is True, evaluation
    set_step_up(app, user.user_id, False)
    refused = client.post(f"/api/bots/{canary_bot}/promote-live",
                          json={"approval_token": token}, headers=user.headers)
    assert refused.status_code == 403 and error(refused)["code"] == "STEP_UP_REQUIRED"
    set_step_up(app, user.user_id, True)
    tampered = client.post(f"/api/bots/{canary_bot}/promote-live",
                           json={"approval_token": token[:-2] + "xx"}, headers=user.headers)
    assert tampered.status_code == 403 and error(tampered)["code"] == "APPROVAL_INVALID"
    live = client.post(f"/api/bots/{canary_bot}/promote-live", json={"approval_token": token},
                       headers=user.headers)
    assert live.status_code == 200, live.text
    assert live.json()["stage"] == "LIVE" and stage_of(client, user, canary_bot) == "LIVE"
    with app.state.session_factory() as session:
        assert session.scalars(sa.select(Approval)).one().used_at is not None
    # Used once: back to CANARY, the same token is refused.
    set_stage(app, canary_bot, Stage.CANARY)
    reused = client.post(f"/api/bots/{canary_bot}/promote-live",
                         json={"approval_token": token}, headers=user.headers)
    assert reused.status_code == 409 and error(reused)["code"] == "APPROVAL_USED"


def test_expired_and_foreign_tokens_are_refused(
    client: TestClient, user: ApiUser, canary_bot: str, app: FastAPI
) -> None:
    set_step_up(app, user.user_id, True)
    token = issue_token(client, user, canary_bot)
    with app.state.session_factory() as session:
        session.execute(sa.update(Approval).values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    expired = client.post(f"/api/bots/{canary_bot}/promote-live",
                          json={"approval_token": token}, headers=user.headers)
    assert expired.status_code == 403 and error(expired)["code"] == "APPROVAL_EXPIRED"
    other = client.post("/api/bots", json=VALID_BOT, headers=user.headers).json()["id"]
    set_stage(app, other, Stage.CANARY)
    add_evidence_for(app, other, Stage.CANARY)
    other_token = issue_token(client, user, other)
    foreign = client.post(f"/api/bots/{canary_bot}/promote-live",
                          json={"approval_token": other_token}, headers=user.headers)
    assert foreign.status_code == 403 and error(foreign)["code"] == "APPROVAL_INVALID"
    garbage = client.post(f"/api/bots/{canary_bot}/promote-live",
                          json={"approval_token": "not-a-token"}, headers=user.headers)
    assert garbage.status_code == 403 and error(garbage)["code"] == "APPROVAL_INVALID"
    assert stage_of(client, user, canary_bot) == "CANARY"


def test_failed_gates_keep_the_token_unused(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI
) -> None:
    set_stage(app, bot_id, Stage.CANARY)
    set_step_up(app, user.user_id, True)
    token = issue_token(client, user, bot_id)
    refused = client.post(f"/api/bots/{bot_id}/promote-live", json={"approval_token": token},
                          headers=user.headers)
    assert refused.status_code == 409 and error(refused)["code"] == "GATES_NOT_MET"
    assert "step_up" not in {g["id"] for g in error(refused)["gates"]}
    add_evidence_for(app, bot_id, Stage.CANARY)
    live = client.post(f"/api/bots/{bot_id}/promote-live", json={"approval_token": token},
                       headers=user.headers)
    assert live.status_code == 200, live.text


def test_approval_only_for_canary(client: TestClient, user: ApiUser, bot_id: str,
                                  app: FastAPI) -> None:
    set_step_up(app, user.user_id, True)
    response = client.post(f"/api/bots/{bot_id}/approvals", headers=user.headers)
    assert response.status_code == 409 and error(response)["code"] == "STAGE_NOT_ELIGIBLE"


# --- retire ----------------------------------------------------------------------------------


class RecordingHooks:
    def __init__(self) -> None:
        self.halted: list[str] = []

    def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]:
        self.halted.append(bot.id)
        return {"bot_id": bot.id, "flattened": True}


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingHooks]:
    import botwarden.services.kill as kill_service

    recorder = RecordingHooks()
    monkeypatch.setattr(kill_service, "_hooks", [recorder])
    yield recorder


def test_retire_stops_runners_flattens_and_is_terminal(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI, hooks: RecordingHooks
) -> None:
    set_stage(app, bot_id, Stage.PAPER)
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        running = BotJob(account_id=bot.account_id, bot_id=bot_id, job_type="RUNNER",
                         status="RUNNING", lease_owner="w1", lease_token="t" * 32,
                         lease_expires_at=utcnow() + timedelta(seconds=30))
        finished = BotJob(account_id=bot.account_id, bot_id=bot_id, job_type="RUNNER",
                          status="COMPLETED", completed_at=utcnow())
        session.add_all([running, finished])
        session.commit()
        running_id, finished_id = running.id, finished.id
    response = client.post(f"/api/bots/{bot_id}/retire", headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stage"] == "RETIRED" and body["is_trading_enabled"] is False
    assert body["canceled_jobs"] == [running_id]
    assert hooks.halted == [bot_id] and body["halt"] == [{"bot_id": bot_id, "flattened": True}]
    with app.state.session_factory() as session:
        job = session.get(BotJob, running_id)
        assert job.status == "CANCELED" and job.status_reason_code and job.completed_at
        assert job.lease_token is None
        assert session.get(BotJob, finished_id).status == "COMPLETED"
        events = session.scalars(sa.select(JobRunEvent)
                                 .where(JobRunEvent.job_id == running_id)).all()
        assert [(e.from_status, e.to_status) for e in events] == [("RUNNING", "CANCELED")]
        bot = session.get(Bot, bot_id)
        assert bot.retired_at is not None and bot.stage_changed_at is not None
    for method, path, payload in (("PATCH", "stage", {"stage": "TRIALS"}),
                                  ("POST", "retire", None), ("POST", "graduate", None)):
        again = client.request(method, f"/api/bots/{bot_id}/{path}", json=payload,
                               headers=user.headers)
        assert again.status_code == 409 and error(again)["code"] == "BOT_RETIRED"


def test_demotion_out_of_real_money_stops_runners(
    client: TestClient, user: ApiUser, bot_id: str, app: FastAPI, hooks: RecordingHooks
) -> None:
    set_stage(app, bot_id, Stage.LIVE)
    to_canary = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "CANARY"},
                             headers=user.headers)
    assert to_canary.status_code == 200 and hooks.halted == []
    to_paper = client.patch(f"/api/bots/{bot_id}/stage", json={"stage": "PAPER"},
                            headers=user.headers)
    assert to_paper.status_code == 200 and hooks.halted == [bot_id]


# --- live readiness, autonomy, profiles, isolation -------------------------------------------


def test_live_readiness_blockers(client: TestClient, user: ApiUser, bot_id: str,
                                 app: FastAPI) -> None:
    body = client.get(f"/api/bots/{bot_id}/live-readiness", headers=user.headers).json()
    assert body["ready"] is False
    codes = {b["code"] for b in body["blockers"]}
    assert codes == {"STAGE_NOT_ELIGIBLE", "LIVE_TRADING_DISABLED", "TOTP_NOT_ENABLED",
                     "INTEGRATION_KEY_MISSING"}
    assert all(b["message"] and b["fix"] for b in body["blockers"])
    set_stage(app, bot_id, Stage.CANARY)
    client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD"}, headers=user.headers)
    codes = {b["code"] for b in client.get(f"/api/bots/{bot_id}/live-readiness",
                                           headers=user.headers).json()["blockers"]}
    assert {"GATES_NOT_MET", "BOT_KILLED"} <= codes and "STAGE_NOT_ELIGIBLE" not in codes


def test_live_ready_when_nothing_blocks(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={
        "tradovate_username": "demo-user", "tradovate_password": SecretStr("pw")}))
    with TestClient(app) as client, app.state.session_factory() as session:
        _, row = create_account(session, "ready@example.com", "correct horse battery")
        row.totp_enabled = True
        headers = {"Authorization":
                   f"Bearer {issue_api_token(session, row, timedelta(hours=1)).token}"}
        session.commit()
        bot_id = client.post("/api/bots", json=VALID_BOT, headers=headers).json()["id"]
        set_stage(app, bot_id, Stage.CANARY)
        add_evidence_for(app, bot_id, Stage.CANARY)
        session.execute(sa.update(Bot).values(is_trading_enabled=True))
        session.commit()
        body = client.get(f"/api/bots/{bot_id}/live-readiness", headers=headers).json()
        assert body == {"bot_id": bot_id, "stage": "CANARY", "ready": True, "blockers": []}
    app.state.engine.dispose()


def test_demo_profile_is_shown_and_lighter(client: TestClient,
                                           make_user: Callable[..., ApiUser]) -> None:
    demo = make_user(gate_profile="demo")
    bot_id = client.post("/api/bots", json=VALID_BOT, headers=demo.headers).json()["id"]
    body = client.get(f"/api/bots/{bot_id}/promotion-evaluation", headers=demo.headers).json()
    assert body["gate_profile"] == "demo"
    gates = {g["id"]: g for g in body["gates"]}
    assert gates["min_trades"]["required"] == 20 and gates["min_win_rate"]["required"] == 35


def test_autonomy_score_per_bot_and_account(client: TestClient, user: ApiUser, bot_id: str,
                                            app: FastAPI) -> None:
    bare = client.get("/api/autonomy/score", headers=user.headers).json()
    assert bare["bots"][0]["tier"] == "LOCKED"
    add_evidence_for(app, bot_id, Stage.TRIALS)
    body = client.get("/api/autonomy/score", headers=user.headers).json()
    [bot] = body["bots"]
    assert bot["bot_id"] == bot_id and bot["score"] >= 50
    assert [p["id"] for p in bot["parts"]] == ["data_reliability", "decision_quality",
                                               "risk_discipline", "execution_health",
                                               "supervisor_trust"]
    assert sum(p["max_score"] for p in bot["parts"]) == 100
    assert body["account"]["score"] == bot["score"] and body["account"]["tier"] == bot["tier"]
    listed = client.get("/api/bots", headers=user.headers).json()
    assert listed[0]["autonomy_score"] == bot["score"]
    one = client.get(f"/api/bots/{bot_id}", headers=user.headers).json()
    assert one["autonomy_score"] == bot["score"]


ROUTES = [("PATCH", "stage", {"stage": "TRIALS"}), ("GET", "promotion-evaluation", None),
          ("GET", "live-readiness", None), ("POST", "graduate", None),
          ("POST", "approvals", None), ("POST", "promote-live", {"approval_token": "x"}),
          ("POST", "retire", None)]


@pytest.mark.parametrize(("method", "path", "payload"), ROUTES)
def test_another_accounts_bot_is_not_found(
    client: TestClient, bot_id: str, app: FastAPI, make_user: Callable[..., ApiUser],
    method: str, path: str, payload: dict[str, Any] | None,
) -> None:
    intruder = make_user()
    set_step_up(app, intruder.user_id, True)
    response = client.request(method, f"/api/bots/{bot_id}/{path}", json=payload,
                              headers=intruder.headers)
    assert response.status_code == 404 and error(response)["code"] == "NOT_FOUND"
    assert client.get("/api/autonomy/score", headers=intruder.headers).json()["bots"] == []
    unauthenticated = client.request(method, f"/api/bots/{bot_id}/{path}", json=payload)
    assert unauthenticated.status_code == 401
