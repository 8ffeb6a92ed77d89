"""The demo account: `demo@botwarden.local` / `botwarden-demo`, an admin, on the "demo" gate
profile (domain/gates.py: lighter on volume, synthetic bars accepted as recorded market
data). It exists only on the embedded default database (SQLite), never in production, and
only while `demo_fleet` is on.

It is made of the same rows as any account, its password hashed by services.accounts'
argon2 hasher at the configured cost. Only the address check of registration is not
applied: `.local` is a reserved domain (RFC 6762) that registration rightly refuses for real
users, and exactly why it suits a login that can never receive mail."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.domain.trading import Role
from botwarden.services.accounts import normalise_email, passwords
from botwarden.store.models import Account, User

DEMO_EMAIL = "demo@botwarden.local"
DEMO_PASSWORD = "botwarden-demo"  # noqa: S105 - the documented demo login, never in production
DEMO_ACCOUNT_NAME = "Botwarden demo fleet"
DEMO_PROFILE = "demo"


def demo_allowed(settings: Settings) -> bool:
    """The demo account and fleet: on SQLite, outside production, with `demo_fleet` on."""
    return settings.demo_fleet and settings.is_sqlite and not settings.is_production


@dataclass(frozen=True, slots=True)
class DemoAccount:
    account_id: str
    user_id: str
    gate_profile: str
    created: bool


def ensure_demo_account(engine: Engine, settings: Settings) -> DemoAccount | None:
    """The demo account and its admin, created if missing; None when not allowed here."""
    if not demo_allowed(settings):
        return None
    email = normalise_email(DEMO_EMAIL)
    with Session(engine, expire_on_commit=False) as session:
        user = session.scalars(sa.select(User).where(User.email == email)).first()
        created = user is None
        if user is None:
            account = Account(name=DEMO_ACCOUNT_NAME, gate_profile=DEMO_PROFILE)
            session.add(account)
            session.flush()
            user = User(account_id=account.id, email=email, role=Role.ADMIN.value,
                        password_hash=passwords(settings).hash(DEMO_PASSWORD))
            session.add(user)
            session.commit()
        found = session.get(Account, user.account_id)
        assert found is not None
        return DemoAccount(found.id, user.id, found.gate_profile, created)

def banner(host: str, port: int) -> str:
    """What `botwarden serve` prints when the demo fleet starts."""
    url = f"http://{host}:{port}"
    login = (f"curl -s -X POST {url}/api/auth/login -H 'Content-Type: application/json' "
             f"-d '{{\"email\": \"{DEMO_EMAIL}\", \"password\": \"{DEMO_PASSWORD}\"}}'")
    rule = "=" * 78
    return "\n".join([
        rule,
        "  Botwarden demo fleet",
        f"  API:   {url}   (docs: {url}/docs)",
        f"  Login: {DEMO_EMAIL} / {DEMO_PASSWORD}   (admin of the demo account,",
        "         gate profile \"demo\"; synthetic MES and MNQ bars replayed as a live feed)",
        "  The fleet researches, backtests, promotes and starts its bots in the background:",
        "  runners appear within a minute, SHADOW promotions after their paper trading.",
        "",
        f"  TOKEN=$({login} \\",
        "    | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')",
        f"  curl -s {url}/api/runners -H \"Authorization: Bearer $TOKEN\"",
        f"  curl -s {url}/api/bots -H \"Authorization: Bearer $TOKEN\"",
        "",
        "  Turn it off with BOTWARDEN_DEMO_FLEET=false; production never creates it.",
        rule,
    ])
