"""GET /api/economic-calendar and GET /api/unusual-whales/flow."""

from __future__ import annotations

from datetime import timedelta

import httpx
import respx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from botwarden.api.app import create_app
from botwarden.config import Settings
from botwarden.data.unusual_whales import BASE_URL, FLOW_ALERTS
from botwarden.services.accounts import create_account, issue_token
from tests.api.conftest import ApiUser
from tests.data.providers.helpers import fixture_json


def test_calendar_returns_builtin_events_in_utc(client: TestClient, user: ApiUser) -> None:
    response = client.get("/api/economic-calendar",
                          params={"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"},
                          headers=user.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    events = {(e["name"], e["at"]) for e in body["events"]}
    assert ("FOMC rate decision", "2025-03-19T18:00:00Z") in events
    assert ("CPI for February 2025", "2025-03-12T12:30:00Z") in events
    assert body["count"] == 3 and body["from"].startswith("2025-03-01")
    low = client.get("/api/economic-calendar", params={"from": "2025-03-01", "to": "2025-04-01",
                                                        "impact": "LOW"}, headers=user.headers)
    assert low.json()["count"] == 0


def test_calendar_rejects_bad_input(client: TestClient, user: ApiUser) -> None:
    bad = client.get("/api/economic-calendar", params={"impact": "HUGE"}, headers=user.headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "INVALID_REQUEST"
    backwards = client.get("/api/economic-calendar",
                           params={"from": "2025-04-01", "to": "2025-03-01"},
                           headers=user.headers)
    assert backwards.status_code == 422
    assert client.get("/api/economic-calendar").status_code == 401


def test_flow_without_key_is_424_with_a_fix(client: TestClient, user: ApiUser) -> None:
    response = client.get("/api/unusual-whales/flow", params={"symbol": "SPY"},
                          headers=user.headers)
    assert response.status_code == 424
    error = response.json()["error"]
    assert error["code"] == "INTEGRATION_KEY_MISSING"
    assert "BOTWARDEN_" in error["fix"]


@respx.mock
def test_flow_with_key_returns_parsed_alerts(settings: Settings) -> None:
    respx.get(BASE_URL + FLOW_ALERTS).mock(
        return_value=httpx.Response(200, json=fixture_json("uw_flow_alerts.json")))
    app = create_app(settings.model_copy(
        update={"unusual_whales_api_key": SecretStr("uw-secret-key")}))
    with TestClient(app) as client, app.state.session_factory() as session:
        _, admin = create_account(session, "uw@example.com", "correct horse battery")
        token = issue_token(session, admin, timedelta(hours=1)).token
        session.commit()
        response = client.get("/api/unusual-whales/flow", params={"symbol": "qqq", "limit": 5},
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["symbol"] == "QQQ" and body["count"] == 2
    assert body["alerts"][0]["option_chain"] == "QQQ251028C00611000"
    assert "uw-secret-key" not in response.text
    app.state.engine.dispose()
