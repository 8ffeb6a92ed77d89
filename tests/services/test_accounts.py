"""Accounts and users: argon2 passwords, registration rules, login, and `botwarden user create`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from botwarden.cli import app as cli
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.trading import Role
from botwarden.services import accounts
from botwarden.store.models import Account, ApiToken, User

PASSWORD = "correct horse battery"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_passwords_use_the_configured_cost(settings: Settings) -> None:
    passwords = accounts.passwords(settings)
    stored = passwords.hash(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert (f"m={settings.password_hash_memory_kib},t={settings.password_hash_time_cost},"
            f"p={settings.password_hash_parallelism}") in stored
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "!")
    assert not passwords.verify("not a hash", PASSWORD)
    assert passwords.needs_rehash(accounts.Passwords(1, 16, 1).hash(PASSWORD))


def test_an_unknown_email_costs_one_argon2_check_too(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = accounts.passwords(settings)
    checked: list[str] = []

    class Spy:
        def __init__(self, real: PasswordHasher) -> None:
            self.real = real

        def verify(self, stored: str, password: str) -> bool:
            checked.append(stored)
            return self.real.verify(stored, password)

    monkeypatch.setattr(passwords, "hasher", Spy(passwords.hasher))
    assert not passwords.verify(None, "botwarden-timing-equaliser")  # even the dummy's own
    assert len(checked) == 1 and checked[0].startswith("$argon2id$")


def test_registration_rules(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        account, admin = accounts.create_account(session, " Ann@Example.com ", PASSWORD,
                                                 settings=settings)
        session.commit()
        assert admin.email == "ann@example.com" and admin.role == "admin"
        assert account.name == "ann@example.com"
        for email, password, code in (("ANN@example.com", PASSWORD, "EMAIL_TAKEN"),
                                      ("ann@", PASSWORD, "INVALID_REQUEST"),
                                      ("bob@example.com", "short", "INVALID_REQUEST")):
            with pytest.raises(DomainError) as refused:
                accounts.add_user(session, account.id, email, password, Role.VIEWER, settings)
            assert refused.value.code == code, email
            session.rollback()
        with pytest.raises(DomainError) as missing:
            accounts.add_user(session, "no-such-account", "bob@example.com", PASSWORD,
                              Role.VIEWER, settings)
        assert missing.value.code == "NOT_FOUND"
        with pytest.raises(DomainError) as lonely_viewer:
            accounts.enroll(session, "cy@example.com", PASSWORD, Role.VIEWER, None, settings)
        assert lonely_viewer.value.code == "INVALID_REQUEST"
        assert session.scalar(sa.select(sa.func.count()).select_from(Account)) == 1


def test_login_rehashes_a_password_stored_at_another_cost(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        _, user = accounts.create_account(session, "dee@example.com", PASSWORD, settings=settings)
        user.password_hash = accounts.Passwords(1, 16, 1).hash(PASSWORD)
        session.commit()
        result = accounts.login(session, email="DEE@example.com", password=PASSWORD, code=None,
                                address="127.0.0.1", now=NOW, settings=settings)
        session.commit()
        assert result.token.expires_at == NOW + timedelta(hours=settings.token_ttl_hours)
        stored = session.scalar(sa.select(User.password_hash).where(User.id == user.id))
        assert stored is not None and not accounts.passwords(settings).needs_rehash(stored)
        assert accounts.passwords(settings).verify(stored, PASSWORD)
        token = session.get(ApiToken, result.token.token_id)
        assert token is not None and token.token_hash != result.token.token  # stored hashed


def test_revoke_token_is_idempotent(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        _, user = accounts.create_account(session, "eve@example.com", PASSWORD, settings=settings)
        issued = accounts.issue_token(session, user, timedelta(hours=1), NOW)
        accounts.revoke_token(session, issued.token_id, NOW)
        accounts.revoke_token(session, issued.token_id, NOW.replace(year=2031))
        session.commit()
        row = session.get(ApiToken, issued.token_id)
        assert row is not None and row.revoked_at == NOW


# --- the `botwarden user create` command ----------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["user", "create", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_creates_an_admin_with_a_new_account_then_joins_it(database_url: str) -> None:
    code, out, _ = run("--email", "Root@Example.com", "--password", PASSWORD,
                       "--database-url", database_url)
    assert code == 0, out
    created = json.loads(out)
    assert created["email"] == "root@example.com" and created["role"] == "admin"
    code, out, _ = run("--email", "viewer@example.com", "--password", PASSWORD, "--role",
                       "VIEWER", "--account-id", created["account_id"],
                       "--database-url", database_url)
    assert code == 0, out
    joined = json.loads(out)
    assert joined["account_id"] == created["account_id"] and joined["role"] == "viewer"
    assert joined["user_id"] != created["user_id"]


@pytest.mark.parametrize(("args", "message"), [
    (("--email", "nope", "--password", PASSWORD), "invalid email"),
    (("--email", "a@example.com", "--password", "short"), "at least 8 characters"),
    (("--email", "a@example.com", "--password", PASSWORD, "--role", "viewer"),
     "first user of a new account is its admin"),
    (("--email", "a@example.com", "--password", PASSWORD, "--account-id", "missing"),
     "account not found"),
])
def test_cli_refuses_bad_input_clearly(
    database_url: str, args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(*args, "--database-url", database_url)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and message in err


def test_cli_refuses_a_taken_email_and_an_unmigrated_database(
    database_url: str, tmp_path: Path
) -> None:
    args = ("--email", "dup@example.com", "--password", PASSWORD)
    assert run(*args, "--database-url", database_url)[0] == 0
    code, _, err = run(*args, "--database-url", database_url)
    assert code == 1 and "already registered" in err
    code, _, err = run(*args, "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1 and "botwarden db upgrade" in err
