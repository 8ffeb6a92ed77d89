"""An account's users and roles: admins manage, members read, the last admin stays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from botwarden.domain.trading import Role
from tests.api.conftest import ApiUser
from tests.api.test_auth import PASSWORD, error_code, fresh_email, login


def add(client: TestClient, admin: ApiUser, role: str | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"email": fresh_email(), "password": PASSWORD, **extra}
    if role is not None:
        body["role"] = role
    return client.post("/api/users", json=body, headers=admin.headers)


def test_an_admin_adds_users_that_members_can_list(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    trader = add(client, user, "trader")
    assert trader.status_code == 201, trader.text
    assert trader.json()["role"] == "trader" and trader.json()["disabled"] is False
    viewer = add(client, user)
    assert viewer.status_code == 201 and viewer.json()["role"] == "viewer"  # least privilege
    member = make_user(Role.VIEWER, account_id=user.account_id)
    listed = client.get("/api/users", headers=member.headers)
    assert listed.status_code == 200
    assert {u["id"] for u in listed.json()} == {user.user_id, trader.json()["id"],
                                                viewer.json()["id"], member.user_id}
    one = client.get(f"/api/users/{trader.json()['id']}", headers=member.headers)
    assert one.status_code == 200 and one.json() == trader.json()
    token = login(client, trader.json()["email"])
    assert token.status_code == 200, token.text


def test_only_admins_manage_users(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    for role in (Role.VIEWER, Role.TRADER):
        member = make_user(role, account_id=user.account_id)
        for response in (add(client, member, "admin"),
                         client.patch(f"/api/users/{member.user_id}", json={"role": "admin"},
                                      headers=member.headers),
                         client.delete(f"/api/users/{user.user_id}", headers=member.headers)):
            assert response.status_code == 403 and error_code(response) == "ROLE_FORBIDDEN"
    roles = {u["id"]: u["role"] for u in client.get("/api/users", headers=user.headers).json()}
    assert sorted(roles.values()) == ["admin", "trader", "viewer"]


def test_disabling_a_user_revokes_its_tokens_and_blocks_login(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    trader = make_user(Role.TRADER, account_id=user.account_id)
    off = client.patch(f"/api/users/{trader.user_id}", json={"disabled": True},
                       headers=user.headers)
    assert off.status_code == 200 and off.json()["disabled"] is True
    assert client.get("/api/me", headers=trader.headers).status_code == 401
    refused = login(client, trader.email)
    assert refused.status_code == 403 and error_code(refused) == "USER_DISABLED"
    on = client.patch(f"/api/users/{trader.user_id}", json={"disabled": False, "role": "admin"},
                      headers=user.headers)
    assert on.json()["disabled"] is False and on.json()["role"] == "admin"
    assert client.get("/api/me", headers=trader.headers).status_code == 401  # stays revoked
    assert login(client, trader.email).status_code == 200


def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    me = f"/api/users/{user.user_id}"
    for response in (client.patch(me, json={"role": "trader"}, headers=user.headers),
                     client.patch(me, json={"disabled": True}, headers=user.headers),
                     client.delete(me, headers=user.headers)):
        assert response.status_code == 409 and error_code(response) == "LAST_ADMIN"
    disabled_admin = make_user(Role.ADMIN, account_id=user.account_id)
    other = f"/api/users/{disabled_admin.user_id}"
    assert client.patch(other, json={"disabled": True}, headers=user.headers).status_code == 200
    assert error_code(client.patch(me, json={"role": "viewer"}, headers=user.headers)) == (
        "LAST_ADMIN")  # a disabled admin does not count
    assert client.patch(other, json={"disabled": False}, headers=user.headers).status_code == 200
    assert client.patch(me, json={"role": "trader"}, headers=user.headers).status_code == 200
    # Disabling revoked the other admin's tokens: it logs in anew.
    second = {"Authorization": f"Bearer {login(client, disabled_admin.email).json()['token']}"}
    last = client.patch(other, json={"role": "viewer"}, headers=second)
    assert last.status_code == 409 and error_code(last) == "LAST_ADMIN"
    denied = client.get("/api/audit-log?decision=DENY", headers=second).json()
    assert denied[0]["action"] == "USER_MANAGE" and denied[0]["reason_code"] == "LAST_ADMIN"
    assert denied[0]["target_id"] == disabled_admin.user_id


def test_another_accounts_users_answer_404(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    stranger = make_user()
    for path in (f"/api/users/{user.user_id}", "/api/users/no-such-user"):
        for response in (client.get(path, headers=stranger.headers),
                         client.patch(path, json={"role": "viewer"}, headers=stranger.headers),
                         client.delete(path, headers=stranger.headers)):
            assert response.status_code == 404 and error_code(response) == "NOT_FOUND", path
    assert [u["id"] for u in client.get("/api/users", headers=stranger.headers).json()] == [
        stranger.user_id]
    assert client.get("/api/me", headers=user.headers).json()["user"]["role"] == "admin"


def test_deleting_a_user_revokes_its_tokens_and_frees_its_email(
    client: TestClient, user: ApiUser, make_user: Callable[..., ApiUser]
) -> None:
    trader = make_user(Role.TRADER, account_id=user.account_id)
    assert client.delete(f"/api/users/{trader.user_id}", headers=user.headers).status_code == 204
    assert client.get("/api/me", headers=trader.headers).status_code == 401
    assert trader.user_id not in {u["id"] for u in
                                  client.get("/api/users", headers=user.headers).json()}
    assert client.delete(f"/api/users/{trader.user_id}", headers=user.headers).status_code == 404
    again = add(client, user, "trader", email=trader.email)
    assert again.status_code == 201, again.text
    taken = add(client, user, email=trader.email)
    assert taken.status_code == 409 and error_code(taken) == "EMAIL_TAKEN"


def test_user_management_is_audited(client: TestClient, user: ApiUser) -> None:
    created = add(client, user, "trader").json()
    client.patch(f"/api/users/{created['id']}", json={"role": "viewer"}, headers=user.headers)
    client.delete(f"/api/users/{created['id']}", headers=user.headers)
    rows = client.get("/api/audit-log?action=USER_MANAGE", headers=user.headers).json()
    assert [(r["detail"]["op"], r["decision"], r["target_id"]) for r in rows] == [
        ("delete", "ALLOW", created["id"]), ("update", "ALLOW", created["id"]),
        ("create", "ALLOW", created["id"])]
    assert rows[1]["detail"]["role"] == "viewer"
    assert all("password" not in r["detail"] for r in rows)
