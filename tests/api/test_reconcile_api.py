"""POST /api/bots/{id}/reconcile through the API: the report, and who may ask for it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.domain.trading import Role
from botwarden.store.models import Bot
from tests.api.conftest import ApiUser


def _set_bot(app: FastAPI, bot_id: str, **values: Any) -> None:
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        for key, value in values.items():
            setattr(bot, key, value)
        session.commit()


def test_a_paper_bot_reconciles_to_an_agreeing_report(app: FastAPI, client: TestClient,
                                                      user: ApiUser, bot_id: str) -> None:
    _set_bot(app, bot_id, stage="PAPER")
    answer = client.post(f"/api/bots/{bot_id}/reconcile", headers=user.headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["broker"] == "paper"
    assert report["drift_found"] is False and report["actions"] == []
    assert report["final_state"] == {"position": 0, "broker_position": 0, "in_agreement": True}


def test_a_trials_bot_has_no_broker_to_reconcile_with(client: TestClient, user: ApiUser,
                                                      bot_id: str) -> None:
    answer = client.post(f"/api/bots/{bot_id}/reconcile", headers=user.headers)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "STAGE_NOT_ELIGIBLE"


def test_a_viewer_may_not_reconcile(app: FastAPI, client: TestClient, user: ApiUser,
                                    bot_id: str, make_user: Any) -> None:
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    answer = client.post(f"/api/bots/{bot_id}/reconcile", headers=viewer.headers)
    assert answer.status_code == 403
