from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from botwarden.api.app import create_app
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from tests.data.builders import make_bars, minutes


def test_trace_id_on_response_error_and_log_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings.model_copy(update={"log_json": True}))
    with TestClient(app) as client:
        response = client.get("/api/bots", headers={"X-Request-Id": "req-123"})
    assert response.status_code == 401
    assert response.headers["x-trace-id"] == "req-123"
    assert response.json()["error"]["trace_id"] == "req-123"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert request_lines and request_lines[-1]["trace_id"] == "req-123"
    assert request_lines[-1]["status"] == 401


def test_invalid_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/api/health", headers={"X-Request-Id": "bad id with spaces"})
    assert response.headers["x-trace-id"] != "bad id with spaces"
    assert len(response.headers["x-trace-id"]) == 32


def test_health_and_ready(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/health").json() == {"status": "ok"}
    # Readiness also needs a usable data provider: bars for Replay (see test_integrations_api).
    BarStore.from_settings(settings).write(make_bars(minutes("2025-03-12 13:00", 5)),
                                           dataset="TEST", provider="test", synthetic=True)
    ready = client.get("/api/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["ok"] is True
    assert "botwarden" in client.get("/metrics").text or client.get("/metrics").status_code == 200


def test_nul_bytes_are_invalid_request(client: TestClient) -> None:
    for url in ("/api/bots/a%00b", "/api/audit-log?action=a%00b"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"]["code"] == "INVALID_REQUEST"
        assert response.headers["x-trace-id"] == response.json()["error"]["trace_id"]
