from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from botwarden.domain.trading import Role
from tests.api.conftest import VALID_BOT, ApiUser


def test_create_read_update_delete(client: TestClient, user: ApiUser) -> None:
    created = client.post("/api/bots", json=VALID_BOT, headers=user.headers)
    assert created.status_code == 201, created.text
    bot = created.json()
    assert bot["stage"] == "TRIALS" and bot["is_trading_enabled"] is False
    assert bot["kill_state"] == "NONE" and bot["live_pnl"] == "0" and bot["sim_pnl"] == "0"
    assert created.headers["x-trace-id"]
    listed = client.get("/api/bots", headers=user.headers).json()
    assert [b["id"] for b in listed] == [bot["id"]]
    patched = client.patch(f"/api/bots/{bot['id']}", json={"name": "renamed"}, headers=user.headers)
    assert patched.status_code == 200 and patched.json()["name"] == "renamed"
    assert client.delete(f"/api/bots/{bot['id']}", headers=user.headers).status_code == 204
    assert client.get(f"/api/bots/{bot['id']}", headers=user.headers).status_code == 404


def test_missing_required_limit_is_a_denial(client: TestClient, user: ApiUser) -> None:
    body = dict(VALID_BOT, risk_config={"max_contracts_per_order": 1})
    response = client.post("/api/bots", json=body, headers=user.headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "NO_LIMIT_CONFIGURED"
    assert "max_daily_loss_usd" in error["missing"] and error["fix"] and error["trace_id"]
    denied = client.get("/api/audit-log?decision=DENY", headers=user.headers).json()
    assert denied[0]["action"] == "BOT_CREATE" and denied[0]["reason_code"] == "NO_LIMIT_CONFIGURED"
    assert client.get("/api/bots", headers=user.headers).json() == []


def test_bad_input_is_invalid_request_not_500(client: TestClient, user: ApiUser) -> None:
    for body in ({}, {"name": ""}, dict(VALID_BOT, symbol="XYZ"),
                 dict(VALID_BOT, strategy={"kind": "sma_cross", "params": {"fast": 50, "slow": 5}}),
                 dict(VALID_BOT, strategy={"kind": "nope"})):
        response = client.post("/api/bots", json=body, headers=user.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] in {"INVALID_REQUEST", "UNKNOWN_SYMBOL",
                                                    "UNKNOWN_STRATEGY"}
    response = client.post("/api/bots", content=b"{not json", headers=user.headers)
    assert response.status_code == 422


def test_viewer_reads_but_cannot_mutate(
    client: TestClient, user: ApiUser, bot_id: str, make_user: Callable[..., ApiUser]
) -> None:
    viewer = make_user(Role.VIEWER, account_id=user.account_id)
    assert client.get(f"/api/bots/{bot_id}", headers=viewer.headers).status_code == 200
    response = client.patch(f"/api/bots/{bot_id}", json={"name": "x"}, headers=viewer.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "ROLE_FORBIDDEN"


def test_trading_toggle_needs_step_up(client: TestClient, user: ApiUser, bot_id: str) -> None:
    response = client.post(f"/api/bots/{bot_id}/trading", json={"enabled": True},
                           headers=user.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "STEP_UP_REQUIRED"
    off = client.post(f"/api/bots/{bot_id}/trading", json={"enabled": False}, headers=user.headers)
    assert off.status_code == 200 and off.json()["is_trading_enabled"] is False
