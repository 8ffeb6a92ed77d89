"""The demo account exists only where it is allowed (the embedded database, outside
production, demo_fleet on), once, with an argon2-hashed password; the start-up banner names
the URL, the login and how to list the runners."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.demo import start_demo
from botwarden.demo.account import (
    DEMO_EMAIL,
    DEMO_PASSWORD,
    banner,
    demo_allowed,
    ensure_demo_account,
)
from botwarden.services.accounts import passwords
from botwarden.store.db import make_engine
from botwarden.store.models import Account, User
from tests.demo.fleet_support import demo_settings


@pytest.mark.parametrize(("overrides", "allowed"), [
    ({}, True),
    ({"env": "test"}, True),
    ({"env": "production"}, False),
    ({"demo_fleet": False}, False),
    ({"database_url": "postgresql://u:p@localhost/botwarden"}, False),
])
def test_allowed_only_on_sqlite_outside_production_with_the_flag(
        tmp_path: Path, _sqlite_template: Path, overrides: dict[str, object],
        allowed: bool) -> None:
    assert demo_allowed(demo_settings(tmp_path, _sqlite_template, **overrides)) is allowed


def _users(url: str) -> list[User]:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            return list(session.scalars(sa.select(User)))
    finally:
        engine.dispose()


def test_created_once_as_an_admin_on_the_demo_profile(tmp_path: Path,
                                                      _sqlite_template: Path) -> None:
    settings = demo_settings(tmp_path, _sqlite_template)
    engine = make_engine(settings.database_url)
    try:
        first = ensure_demo_account(engine, settings)
        again = ensure_demo_account(engine, settings)
        assert first is not None and again is not None
        assert first.created and not again.created
        assert (again.account_id, again.user_id) == (first.account_id, first.user_id)
        with Session(engine) as session:
            user = session.get(User, first.user_id)
            account = session.get(Account, first.account_id)
            assert user is not None and account is not None
            assert (user.email, user.role, account.gate_profile) == (DEMO_EMAIL, "admin", "demo")
            assert user.password_hash.startswith("$argon2id$")
            assert passwords(settings).verify(user.password_hash, DEMO_PASSWORD)
    finally:
        engine.dispose()


@pytest.mark.parametrize("overrides", [{"env": "production"}, {"demo_fleet": False}])
def test_never_created_where_not_allowed(tmp_path: Path, _sqlite_template: Path,
                                         overrides: dict[str, object]) -> None:
    settings = demo_settings(tmp_path, _sqlite_template, **overrides)
    engine = make_engine(settings.database_url)
    try:
        assert ensure_demo_account(engine, settings) is None
    finally:
        engine.dispose()
    assert start_demo(settings, host="127.0.0.1", port=8000) is None  # no account, no thread
    assert _users(settings.database_url) == []


def test_banner_names_the_url_the_login_and_the_runner_listing() -> None:
    text = banner("127.0.0.1", 8011)
    assert "http://127.0.0.1:8011" in text
    assert DEMO_EMAIL in text and DEMO_PASSWORD in text
    assert "curl -s http://127.0.0.1:8011/api/runners" in text
    assert "http://127.0.0.1:8011/api/auth/login" in text
