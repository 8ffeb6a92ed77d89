"""Accounts, users and sessions: registration, password hashing, token issue and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.domain.errors import DomainError
from botwarden.domain.trading import Role
from botwarden.services.tokens import new_token, token_digest
from botwarden.store.models import Account, ApiToken, User

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost one argon2 check.
_DUMMY_HASH = _hasher.hash("botwarden-timing-equaliser")
MIN_PASSWORD = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_account(
    session: Session, email: str, password: str, *, account_name: str | None = None,
    role: Role = Role.ADMIN, gate_profile: str = "standard",
) -> tuple[Account, User]:
    """A new account with its first user (an admin). The caller commits."""
    email = normalise_email(email)
    _check_password(password)
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise DomainError("EMAIL_TAKEN", "that email is already registered",
                          "Log in instead, or use another email.")
    account = Account(name=account_name or email, gate_profile=gate_profile)
    session.add(account)
    session.flush()
    user = User(account_id=account.id, email=email, password_hash=hash_password(password),
                role=role.value)
    session.add(user)
    session.flush()
    return account, user


def add_user(session: Session, account_id: str, email: str, password: str, role: Role) -> User:
    email = normalise_email(email)
    _check_password(password)
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise DomainError("EMAIL_TAKEN", "that email is already registered", "Use another email.")
    user = User(account_id=account_id, email=email, password_hash=hash_password(password),
                role=role.value)
    session.add(user)
    session.flush()
    return user


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise DomainError("INVALID_REQUEST", f"password must have at least {MIN_PASSWORD} characters",
                          "Choose a longer password.", status=422)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime


def issue_token(session: Session, user: User, ttl: timedelta) -> IssuedToken:
    token = new_token()
    row = ApiToken(user_id=user.id, token_hash=token_digest(token), expires_at=utcnow() + ttl)
    session.add(row)
    session.flush()
    return IssuedToken(token, row.id, row.expires_at)


def revoke_token(session: Session, token_id: str) -> None:
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
