"""The risk monitor as a scheduled loop an admin can trigger through the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

import botwarden.services.risk_monitor  # noqa: F401  (registers the loop, as workers do)
from botwarden.clock import utcnow
from botwarden.services import kill as kill_service
from botwarden.store.models import Bot, BotJob, Position
from tests.api.conftest import ApiUser


class Recorder:
    def __init__(self) -> None:
        self.halted: list[str] = []

    def halt(self, session: Session, bot: Bot, trace_id: str | None) -> dict[str, Any]:
        self.halted.append(bot.id)
        return {"bot_id": bot.id}


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    monkeypatch.setattr(kill_service, "_hooks", [])
    with kill_service.installed_execution_hooks(Recorder()) as hooks:
        yield hooks


def test_trigger_risk_monitor_kills_a_bot_whose_runner_went_quiet(
    app: FastAPI, client: TestClient, user: ApiUser, bot_id: str, recorder: Recorder,
) -> None:
    now = utcnow()
    with app.state.session_factory() as session:
        bot = session.get(Bot, bot_id)
        bot.stage = "PAPER"
        session.add(BotJob(account_id=user.account_id, bot_id=bot_id, job_type="RUNNER",
                           status="RUNNING", started_at=now - timedelta(minutes=10),
                           last_heartbeat_at=now - timedelta(minutes=5)))
        session.add(Position(bot_id=bot_id, symbol="MES", qty=1, lots=[[1, "5000"]],
                             realized_pnl=Decimal(0), fees=Decimal(0)))
        session.commit()
    listed = client.get("/api/scheduler", headers=user.headers).json()["tasks"]
    assert {t["name"]: t["interval_seconds"] for t in listed}["risk_monitor"] == 5.0
    ran = client.post("/api/scheduler/trigger", json={"task": "risk_monitor"},
                      headers=user.headers)
    assert ran.status_code == 200, ran.text
    body = ran.json()
    assert body["task"] == "risk_monitor" and body["ok"] is True
    assert body["result"]["checked"] == 1 and body["result"]["bots_killed"] == 1
    assert body["result"]["snapshots"] == 1
    assert "killed" not in body["result"]  # ids stay with the loop, not every account
    events = client.get(f"/api/bots/{bot_id}/kill-events", headers=user.headers).json()
    assert [(e["trigger_code"], e["state"], e["actor"]) for e in events] == [
        ("STALE_HEARTBEAT_CRITICAL", "HARD_KILLED", "risk_monitor")]
    assert recorder.halted == [bot_id]
    equity = client.get(f"/api/bots/{bot_id}/equity", headers=user.headers).json()
    assert [Decimal(p["equity"]) for p in equity] == [Decimal(50000)]
    # Triggered again: the bot is killed already, nothing happens.
    again = client.post("/api/scheduler/trigger", json={"task": "risk_monitor"},
                        headers=user.headers).json()
    assert again["result"]["checked"] == 0 and again["result"]["bots_killed"] == 0
    assert len(client.get(f"/api/bots/{bot_id}/kill-events", headers=user.headers).json()) == 1
