"""Register, login, logout, /api/me, login throttling, TOTP 2FA and the step-up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from botwarden.api.app import create_app
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.ids import new_id
from botwarden.services.totp import code_at
from tests.api.conftest import ApiUser

PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(app: FastAPI) -> FakeClock:
    fake = FakeClock(utcnow())
    app.state.clock = fake
    return fake


def fresh_email() -> str:
    return f"{new_id()}@example.com"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def from_address(app: FastAPI, address: str) -> TestClient:
    return TestClient(app, client=(address, 50000))


def login(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def register(client: TestClient, email: str | None = None) -> tuple[str, dict[str, Any]]:
    email = email or fresh_email()
    response = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return email, response.json()


def wrong_code(secret: str, now: datetime) -> str:
    """A well-formed code that matches no step of the drift window."""
    window = {code_at(secret, now, k) for k in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in window)


def enable_2fa(client: TestClient, headers: dict[str, str], clock: FakeClock) -> str:
    secret = client.post("/api/2fa/setup", headers=headers).json()["secret"]
    response = client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                           headers=headers)
    assert response.status_code == 200, response.text
    return str(secret)


# --- accounts and tokens ------------------------------------------------------------------


def test_register_login_me_logout_round_trip(client: TestClient, clock: FakeClock) -> None:
    email, ids = register(client, fresh_email().upper())
    response = login(client, email.lower())
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert at(response.json()["expires_at"]) == clock.now + timedelta(hours=12)
    assert response.json()["step_up_until"] is None
    me = client.get("/api/me", headers=bearer(token))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["user"] == {"id": ids["user_id"], "email": email.lower(), "role": "admin"}
    assert body["account"]["id"] == ids["account_id"]
    assert body["account"]["gate_profile"] == "standard"
    assert body["account"]["kill_switch_engaged"] is False
    assert body["two_factor"] == {"enabled": False, "pending": False}
    assert body["step_up_until"] is None
    assert at(body["token"]["expires_at"]) == clock.now + timedelta(hours=12)
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 204
    after = client.get("/api/me", headers=bearer(token))
    assert after.status_code == 401 and error_code(after) == "UNAUTHENTICATED"
    assert client.post("/api/auth/logout", headers=bearer(token)).status_code == 401


def test_register_refuses_a_taken_email_and_bad_input(client: TestClient) -> None:
    email, _ = register(client)
    again = client.post("/api/auth/register", json={"email": f"  {email.upper()} ",
                                                    "password": PASSWORD})
    assert again.status_code == 409 and error_code(again) == "EMAIL_TAKEN"
    for body in ({"email": "not-an-email", "password": PASSWORD},
                 {"email": fresh_email(), "password": "short"},
                 {"email": fresh_email()},
                 {"email": fresh_email(), "password": PASSWORD, "role": "admin"}):
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 422 and error_code(response) == "INVALID_REQUEST", body


def test_unknown_email_and_wrong_password_get_the_same_answer(
    client: TestClient, user: ApiUser
) -> None:
    unknown = login(client, fresh_email())
    wrong = login(client, user.email, "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    strip = [{k: v for k, v in r.json()["error"].items() if k != "trace_id"}
             for r in (unknown, wrong)]
    assert strip[0] == strip[1] and strip[0]["code"] == "INVALID_CREDENTIALS"
    garbled = login(client, "nul\x00@example.com")  # refused before reaching the database
    assert garbled.status_code == 422 and error_code(garbled) == "INVALID_REQUEST"


def test_tokens_expire_after_the_configured_lifetime(
    client: TestClient, user: ApiUser, clock: FakeClock
) -> None:
    clock.now = utcnow() - timedelta(hours=12, minutes=1)
    token = login(client, user.email).json()["token"]
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 401 and error_code(response) == "UNAUTHENTICATED"
    clock.now = utcnow() - timedelta(hours=11)
    assert client.get("/api/me", headers=bearer(login(client, user.email).json()["token"])
                      ).status_code == 200


# --- login throttling ---------------------------------------------------------------------


def test_login_is_throttled_per_email(
    app: FastAPI, user: ApiUser, clock: FakeClock
) -> None:
    for i in range(5):  # each from another address: only the email's count can trip
        assert login(from_address(app, f"10.0.0.{i}"), user.email, "bad").status_code == 401
    clock.advance(seconds=60)
    refused = login(from_address(app, "10.0.1.1"), user.email)
    assert refused.status_code == 429 and error_code(refused) == "RATE_LIMITED"
    assert refused.headers["Retry-After"] == "240"  # the oldest failure leaves in 4 minutes
    clock.advance(seconds=239)
    assert login(from_address(app, "10.0.1.1"), user.email).status_code == 429
    clock.advance(seconds=1)
    assert login(from_address(app, "10.0.1.1"), user.email).status_code == 200


def test_login_is_throttled_per_client_address(
    app: FastAPI, user: ApiUser, clock: FakeClock
) -> None:
    guesser = from_address(app, "192.0.2.7")
    for _ in range(5):
        assert login(guesser, fresh_email(), "bad").status_code == 401
    refused = login(guesser, user.email)  # right password, but from the guessing address
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "300"
    assert login(from_address(app, "192.0.2.8"), user.email).status_code == 200
    clock.advance(minutes=5)
    assert login(guesser, user.email).status_code == 200


def test_success_forgives_the_email_but_not_the_address(
    app: FastAPI, user: ApiUser, clock: FakeClock
) -> None:
    first, second = from_address(app, "198.51.100.1"), from_address(app, "198.51.100.2")
    for _ in range(4):
        assert login(first, user.email, "bad").status_code == 401
    assert login(first, user.email).status_code == 200
    for _ in range(4):  # the email's count restarted at 0: 4 more failures stay under 5
        assert login(second, user.email, "bad").status_code == 401
    assert login(second, user.email).status_code == 200
    assert login(first, fresh_email(), "bad").status_code == 401  # the address's 5th failure
    assert login(first, user.email).status_code == 429


def test_login_throttle_holds_across_two_app_instances(settings: Settings, user: ApiUser) -> None:
    apps = [create_app(settings), create_app(settings)]
    try:
        clients = [TestClient(a) for a in apps]
        for i in range(5):
            assert login(clients[i % 2], user.email, "bad").status_code == 401
        for c in clients:
            refused = login(c, user.email)
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["Retry-After"]) <= 300
    finally:
        for a in apps:
            a.state.engine.dispose()


def test_login_denials_are_audited_on_the_named_account(
    client: TestClient, user: ApiUser
) -> None:
    login(client, user.email, "bad")
    assert login(client, user.email).status_code == 200
    rows = client.get("/api/audit-log?action=AUTH_LOGIN", headers=user.headers).json()
    assert [(r["decision"], r["reason_code"]) for r in rows] == [
        ("ALLOW", "ALLOWED"), ("DENY", "INVALID_CREDENTIALS")]
    assert all(r["target_id"] == user.user_id and r["trace_id"] for r in rows)


# --- TOTP and the step-up -----------------------------------------------------------------


def test_totp_setup_and_verify_enable_2fa_then_login_needs_a_code(
    client: TestClient, user: ApiUser, clock: FakeClock
) -> None:
    setup = client.post("/api/2fa/setup", headers=user.headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    assert setup.json()["otpauth_uri"].startswith("otpauth://totp/")
    assert "issuer=Botwarden" in setup.json()["otpauth_uri"]
    assert client.get("/api/me", headers=user.headers).json()["two_factor"] == {
        "enabled": False, "pending": True}
    assert login(client, user.email).status_code == 200  # pending is not enabled yet
    verified = client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                           headers=user.headers)
    assert verified.status_code == 200, verified.text
    assert verified.json()["enabled_now"] is True
    assert at(verified.json()["step_up_until"]) == clock.now + timedelta(minutes=5)
    me = client.get("/api/me", headers=user.headers).json()
    assert me["two_factor"] == {"enabled": True, "pending": False}
    assert at(me["step_up_until"]) == clock.now + timedelta(minutes=5)

    clock.advance(seconds=30)
    required = login(client, user.email)
    assert required.status_code == 401 and error_code(required) == "TOTP_REQUIRED"
    wrong = login(client, user.email, totp=wrong_code(secret, clock.now))
    assert wrong.status_code == 401 and error_code(wrong) == "TOTP_INVALID"
    bad_password = login(client, user.email, "bad", totp=code_at(secret, clock.now))
    assert error_code(bad_password) == "INVALID_CREDENTIALS"
    ok = login(client, user.email, totp=code_at(secret, clock.now))
    assert ok.status_code == 200, ok.text
    assert at(ok.json()["step_up_until"]) == clock.now + timedelta(minutes=5)
    replay = login(client, user.email, totp=code_at(secret, clock.now))
    assert replay.status_code == 401 and error_code(replay) == "TOTP_REPLAYED"


def test_verify_before_setup_is_refused(client: TestClient, user: ApiUser) -> None:
    response = client.post("/api/2fa/verify", json={"code": "123456"}, headers=user.headers)
    assert response.status_code == 409 and error_code(response) == "TOTP_NOT_SET_UP"


def test_a_code_is_accepted_once(client: TestClient, user: ApiUser, clock: FakeClock) -> None:
    secret = enable_2fa(client, user.headers, clock)
    used = code_at(secret, clock.now)
    replay = client.post("/api/2fa/verify", json={"code": used}, headers=user.headers)
    assert replay.status_code == 401 and error_code(replay) == "TOTP_REPLAYED"
    clock.advance(seconds=30)
    newer = client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                        headers=user.headers)
    assert newer.status_code == 200 and newer.json()["enabled_now"] is False
    # The previous step's code is inside the drift window, but older than one already used.
    older = client.post("/api/2fa/verify", json={"code": used}, headers=user.headers)
    assert older.status_code == 401 and error_code(older) == "TOTP_REPLAYED"


def _distinct_window(secret: str, clock: FakeClock) -> None:
    """Move the clock to a step whose five neighbouring codes differ (they almost always
    do), so that what the test refuses is refused for its step, not a code collision."""
    while len({code_at(secret, clock.now, k) for k in range(-2, 3)}) < 5:
        clock.advance(seconds=30)


def test_drift_window_is_one_step_each_way(
    client: TestClient, user: ApiUser, clock: FakeClock
) -> None:
    secret = enable_2fa(client, user.headers, clock)
    clock.advance(seconds=120)
    _distinct_window(secret, clock)

    def verify(steps: int) -> Any:
        return client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now, steps)},
                           headers=user.headers)

    for steps in (-2, 2):
        refused = verify(steps)
        assert refused.status_code == 401 and error_code(refused) == "TOTP_INVALID", steps
    assert verify(-1).status_code == 200
    assert verify(1).status_code == 200


def test_step_up_lasts_five_minutes(client: TestClient, user: ApiUser, clock: FakeClock) -> None:
    # The policy checks the step-up against the real time: start the clock 6 minutes ago.
    start = utcnow() - timedelta(minutes=6)
    clock.now = start
    secret = enable_2fa(client, user.headers, clock)
    clock.now = start + timedelta(minutes=4, seconds=59)
    assert at(client.get("/api/me", headers=user.headers).json()["step_up_until"]) == (
        start + timedelta(minutes=5))
    clock.now = start + timedelta(minutes=5, seconds=1)
    assert client.get("/api/me", headers=user.headers).json()["step_up_until"] is None
    assert client.post("/api/kill-switch", json={}, headers=user.headers).status_code == 200
    refused = client.post("/api/kill-switch/release", headers=user.headers)
    assert refused.status_code == 403 and error_code(refused) == "STEP_UP_REQUIRED"
    clock.now = utcnow() - timedelta(minutes=1)
    assert client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                       headers=user.headers).status_code == 200
    released = client.post("/api/kill-switch/release", headers=user.headers)
    assert released.status_code == 200, released.text


def test_totp_verify_is_throttled_per_user(
    client: TestClient, user: ApiUser, clock: FakeClock
) -> None:
    secret = enable_2fa(client, user.headers, clock)
    clock.advance(seconds=30)
    for _ in range(5):
        response = client.post("/api/2fa/verify", json={"code": wrong_code(secret, clock.now)},
                               headers=user.headers)
        assert response.status_code == 401
    limited = client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                          headers=user.headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "300"
    clock.advance(minutes=5)
    assert client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)},
                       headers=user.headers).status_code == 200


def test_replacing_an_enabled_secret_needs_a_step_up(
    client: TestClient, user: ApiUser, clock: FakeClock
) -> None:
    old = enable_2fa(client, user.headers, clock)
    clock.advance(minutes=6)
    refused = client.post("/api/2fa/setup", headers=user.headers)
    assert refused.status_code == 403 and error_code(refused) == "STEP_UP_REQUIRED"
    assert client.post("/api/2fa/verify", json={"code": code_at(old, clock.now)},
                       headers=user.headers).json()["enabled_now"] is False
    new = client.post("/api/2fa/setup", headers=user.headers).json()["secret"]
    clock.advance(seconds=30)
    confirmed = client.post("/api/2fa/verify", json={"code": code_at(new, clock.now)},
                            headers=user.headers)
    assert confirmed.status_code == 200 and confirmed.json()["enabled_now"] is True
    clock.advance(seconds=30)
    assert login(client, user.email, totp=code_at(old, clock.now)).status_code == 401
    assert login(client, user.email, totp=code_at(new, clock.now)).status_code == 200


def test_every_auth_mutation_is_audited(client: TestClient, clock: FakeClock) -> None:
    email, ids = register(client)
    assert login(client, email, "bad").status_code == 401
    token = login(client, email).json()["token"]
    headers = {**bearer(token), "X-Request-Id": "trace-auth-1"}
    secret = client.post("/api/2fa/setup", headers=headers).json()["secret"]
    client.post("/api/2fa/verify", json={"code": code_at(secret, clock.now)}, headers=headers)
    clock.advance(seconds=30)
    reader = login(client, email, totp=code_at(secret, clock.now)).json()["token"]
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    rows = client.get("/api/audit-log", headers=bearer(reader)).json()
    assert {(r["action"], r["decision"]) for r in rows} == {
        ("AUTH_REGISTER", "ALLOW"), ("AUTH_LOGIN", "ALLOW"), ("AUTH_LOGIN", "DENY"),
        ("TOTP_SETUP", "ALLOW"), ("TOTP_VERIFY", "ALLOW"), ("AUTH_LOGOUT", "ALLOW")}
    assert {r["trace_id"] for r in rows if r["action"] in ("TOTP_SETUP", "AUTH_LOGOUT")} == {
        "trace-auth-1"}
    assert all(r["target_id"] == ids["user_id"] for r in rows if r["action"] != "AUTH_LOGOUT")
