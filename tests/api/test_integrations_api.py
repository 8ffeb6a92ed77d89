"""GET /api/integrations tells the truth; verify is guarded and audited; readiness follows
the data providers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from botwarden.api.app import create_app
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.domain.trading import Role
from botwarden.services.accounts import create_account, issue_token
from botwarden.store.models import AuditLog
from tests.api.conftest import ApiUser
from tests.data.builders import make_bars, minutes


def by_name(body: dict) -> dict[str, dict]:
    return {item["name"]: item for item in body["integrations"]}


def write_bars(settings: Settings) -> None:
    BarStore.from_settings(settings).write(make_bars(minutes("2025-03-12 13:00", 30)),
                                           dataset="TEST", provider="test", synthetic=True)


def test_requires_authentication(client: TestClient) -> None:
    assert client.get("/api/integrations").status_code == 401


def test_keys_missing_and_no_data_are_reported_honestly(client: TestClient,
                                                        user: ApiUser) -> None:
    response = client.get("/api/integrations", headers=user.headers)
    assert response.status_code == 200
    items = by_name(response.json())
    assert set(items) >= {"databento", "polygon", "replay", "unusual_whales", "tradovate",
                          "paper"}
    for name in ("databento", "polygon", "unusual_whales", "tradovate"):
        assert items[name]["configured"] is False and items[name]["status"] == "DOWN"
        assert items[name]["last_error"]["code"] == "KEY_MISSING"
    assert items["replay"]["status"] == "DOWN"
    assert items["replay"]["last_error"]["code"] == "NO_DATA"
    assert items["paper"]["status"] == "OK"
    assert response.json()["usable_data_providers"] == []
    ready = client.get("/api/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["market_data"]["ok"] is False


def test_replay_ok_when_data_exists_and_ready(settings: Settings,
                                              make_user: Callable[..., ApiUser],
                                              app: FastAPI) -> None:
    write_bars(settings)
    with TestClient(app) as client:
        user = make_user()
        body = client.get("/api/integrations", headers=user.headers).json()
        assert by_name(body)["replay"]["status"] == "OK"
        assert body["usable_data_providers"] == ["replay"]
        ready = client.get("/api/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["market_data"]["usable"] == ["replay"]


def test_keys_are_never_returned(settings: Settings) -> None:
    secret = "db-NEVERSHOWTHISKEY0123456789abcd"
    app = create_app(settings.model_copy(update={"databento_api_key": SecretStr(secret),
                                                 "polygon_api_key": SecretStr("pk-hidden")}))
    with TestClient(app) as client, app.state.session_factory() as session:
        _, admin = create_account(session, "keys@example.com", "correct horse battery")
        token = issue_token(session, admin, timedelta(hours=1)).token
        session.commit()
        response = client.get("/api/integrations", headers={"Authorization": f"Bearer {token}"})
    assert secret not in response.text and "pk-hidden" not in response.text
    items = by_name(response.json())
    assert items["databento"]["configured"] is True
    assert items["databento"]["last_error"]["code"] == "NOT_VERIFIED"
    app.state.engine.dispose()


def test_verify_is_guarded_audited_and_counted(settings: Settings, app: FastAPI,
                                               make_user: Callable[..., ApiUser]) -> None:
    write_bars(settings)
    with TestClient(app) as client:
        admin = make_user()
        viewer = make_user(role=Role.VIEWER)
        denied = client.post("/api/integrations/replay/verify", headers=viewer.headers)
        assert denied.status_code == 403
        unknown = client.post("/api/integrations/nope/verify", headers=admin.headers)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
        ok = client.post("/api/integrations/replay/verify", headers=admin.headers)
        assert ok.status_code == 200, ok.text
        assert ok.json()["verify"]["ok"] is True
        assert ok.json()["integration"]["last_verified_at"] is not None
        assert ok.json()["integration"]["usage"]["last_hour"]["calls"] >= 1
        missing = client.post("/api/integrations/databento/verify", headers=admin.headers)
        assert missing.status_code == 200
        assert missing.json()["verify"] == {**missing.json()["verify"], "ok": False,
                                            "code": "KEY_MISSING"}
        trace = ok.headers["x-trace-id"]
    with app.state.session_factory() as session:
        rows = session.scalars(sa.select(AuditLog).where(
            AuditLog.action == "INTEGRATION_VERIFY")).all()
    decisions = {(r.decision, r.target_id, r.reason_code) for r in rows}
    assert ("ALLOW", "replay", "ALLOWED") in decisions
    assert any(d[0] == "DENY" for d in decisions)
    assert any(r.trace_id == trace and r.detail == {"ok": True, "code": None} for r in rows)


def test_metrics_expose_integration_status(client: TestClient) -> None:
    text = client.get("/metrics").text
    assert 'botwarden_integration_status{provider="databento"}' in text
    assert "botwarden_integration_calls_total" in text
