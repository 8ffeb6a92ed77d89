"""The action policy on the route table: every mutating route declares an action, an app
with an undeclared one refuses to start, and `POST /api/action-security` answers the same
policy as a dry run, failing closed with a reason code for each missing fact."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from botwarden.api import app as app_module
from botwarden.api.app import create_app
from botwarden.api.guard import Guarded, guard
from botwarden.config import Settings
from botwarden.domain.stages import Stage
from botwarden.domain.trading import Role
from botwarden.ids import new_id
from botwarden.policy import Action
from botwarden.policy.actions import SPECS
from botwarden.store.models import Bot
from tests.api.conftest import VALID_BOT, ApiUser
from tests.api.route_table import endpoints


def test_every_mutating_route_declares_a_known_action(app: FastAPI) -> None:
    mutating = [e for e in endpoints(app) if e.mutating]
    undeclared = [str(e) for e in mutating if e.action is None]
    assert not undeclared, f"mutating routes without an action: {undeclared}"
    assert all(e.action in SPECS for e in mutating)
    assert len(mutating) >= 10  # the table is really there


def _unguarded_router() -> APIRouter:
    router = APIRouter()

    @router.post("/api/sneaky")
    def sneaky() -> dict[str, str]:
        return {"done": "without asking the policy"}

    return router


def _indirectly_guarded_router() -> APIRouter:
    router = APIRouter()

    def wrapped(ctx: Guarded = Depends(guard(Action.BOT_CREATE))) -> Guarded:
        return ctx

    @router.put("/api/indirect")
    def indirect(ctx: Guarded = Depends(wrapped)) -> dict[str, str]:
        return {"done": "asked"}

    return router


def test_an_unguarded_mutating_route_stops_start_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "ROUTERS", [*app_module.ROUTERS, _unguarded_router()])
    with pytest.raises(RuntimeError, match=r"\['POST'\] /api/sneaky"):
        create_app(settings)


def test_a_guard_behind_another_dependency_counts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "ROUTERS",
                        [*app_module.ROUTERS, _indirectly_guarded_router()])
    application = create_app(settings)
    assert any(e.path == "/api/indirect" and e.action is Action.BOT_CREATE
               for e in endpoints(application))
    application.state.engine.dispose()


def dry_run(client: TestClient, user: ApiUser, **body: object) -> dict[str, object]:
    response = client.post("/api/action-security", json=body, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_dry_run_refuses_incomplete_requests(client: TestClient, user: ApiUser) -> None:
    for body in ({}, {"bot_id": new_id()}, {"action": ""}, {"action": "KILL", "extra": 1}):
        response = client.post("/api/action-security", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "INVALID_REQUEST"


def test_dry_run_reason_codes(
    app: FastAPI, client: TestClient, user: ApiUser, bot_id: str,
    make_user: Callable[..., ApiUser],
) -> None:
    def code(who: ApiUser = user, **body: object) -> object:
        answer = dry_run(client, who, **body)
        assert answer["allowed"] is (answer["reason_code"] == "ALLOWED")
        return answer["reason_code"]

    assert code(action="BOT_UPDATE", bot_id=bot_id) == "ALLOWED"
    assert code(action="LAUNCH_ROCKETS", bot_id=bot_id) == "UNKNOWN_ACTION"
    assert code(action="BOT_UPDATE", bot_id=new_id()) == "NOT_FOUND"
    assert code(action="BOT_UPDATE") == "NOT_FOUND"  # a bot action without its bot
    stranger = make_user()
    assert code(stranger, action="BOT_UPDATE", bot_id=bot_id) == "NOT_FOUND"
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    assert code(viewer, action="BOT_UPDATE", bot_id=bot_id) == "ROLE_FORBIDDEN"

    killed = client.post(f"/api/bots/{bot_id}/kill", json={"mode": "HARD", "reason": "test"},
                         headers=user.headers)
    assert killed.status_code == 200, killed.text
    assert code(action="RUNNER_START", bot_id=bot_id) == "BOT_KILLED"

    canary = client.post("/api/bots", json={**VALID_BOT, "name": "canary"},
                         headers=user.headers).json()["id"]
    with app.state.session_factory() as session:
        session.get(Bot, canary).stage = Stage.CANARY.value
        session.commit()
    assert code(action="PROMOTE_LIVE", bot_id=canary) == "STEP_UP_REQUIRED"

    audit = client.get("/api/audit-log?action=POLICY_DRY_RUN", headers=user.headers).json()
    assert {row["detail"]["reason_code"] for row in audit} >= {
        "ALLOWED", "UNKNOWN_ACTION", "NOT_FOUND", "BOT_KILLED", "STEP_UP_REQUIRED"}
