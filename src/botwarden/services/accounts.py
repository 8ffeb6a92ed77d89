"""Accounts, users and sessions: registration, argon2 passwords, login with throttling and
TOTP, opaque tokens, and the management of an account's users and roles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings, get_settings
from botwarden.domain.errors import DomainError, InvalidRequest, NotFound
from botwarden.domain.trading import Role
from botwarden.services import throttle, totp
from botwarden.services.tokens import new_token, token_digest
from botwarden.store.models import Account, ApiToken, Approval, AuditLog, User

MIN_PASSWORD = 8


class Passwords:
    """argon2id hashing at one cost, with a hash to verify against when the email is
    unknown, so that both answers take one argon2 check of the same cost."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib,
                                     parallelism=parallelism)
        self._dummy_hash = self.hasher.hash("botwarden-timing-equaliser")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            matched = self.hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return matched and bool(stored_hash)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)


@lru_cache(maxsize=4)
def _passwords(time_cost: int, memory_kib: int, parallelism: int) -> Passwords:
    return Passwords(time_cost, memory_kib, parallelism)


def passwords(settings: Settings | None = None) -> Passwords:
    s = settings or get_settings()
    return _passwords(s.password_hash_time_cost, s.password_hash_memory_kib,
                      s.password_hash_parallelism)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _checked_email(email: str) -> str:
    try:
        validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidRequest(f"invalid email: {exc}", "Give a valid email address.") from exc
    return normalise_email(email)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"password must have at least {MIN_PASSWORD} characters",
                             "Choose a longer password.")


def _email_taken() -> DomainError:
    return DomainError("EMAIL_TAKEN", "that email is already registered",
                       "Log in instead, or use another email.", status=409)


def _ensure_email_free(session: Session, email: str) -> None:
    if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
        raise _email_taken()


def _insert_user(session: Session, user: User) -> User:
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same email won
        raise _email_taken() from exc
    return user


def create_account(
    session: Session, email: str, password: str, *, account_name: str | None = None,
    role: Role = Role.ADMIN, gate_profile: str = "standard", settings: Settings | None = None,
) -> tuple[Account, User]:
    """A new account with its first user, its admin. The caller commits."""
    email = _checked_email(email)
    _check_password(password)
    _ensure_email_free(session, email)
    account = Account(name=account_name or email, gate_profile=gate_profile)
    session.add(account)
    session.flush()
    user = User(account_id=account.id, email=email, role=role.value,
                password_hash=passwords(settings).hash(password))
    return account, _insert_user(session, user)


def add_user(session: Session, account_id: str, email: str, password: str, role: Role,
             settings: Settings | None = None) -> User:
    email = _checked_email(email)
    _check_password(password)
    if session.get(Account, account_id) is None:
        raise NotFound("account")
    _ensure_email_free(session, email)
    user = User(account_id=account_id, email=email, role=role.value,
                password_hash=passwords(settings).hash(password))
    return _insert_user(session, user)


def enroll(session: Session, email: str, password: str, role: Role, account_id: str | None,
           settings: Settings | None = None) -> User:
    """A user for `account_id`, or with a new account of its own (whose first user must be
    its admin, or nobody could ever manage it). The caller commits."""
    if account_id is not None:
        return add_user(session, account_id, email, password, role, settings)
    if role is not Role.ADMIN:
        raise InvalidRequest("the first user of a new account is its admin",
                             "Use --role admin, or give --account-id to join an account.")
    return create_account(session, email, password, settings=settings)[1]


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    token_id: str
    expires_at: datetime


def issue_token(session: Session, user: User, ttl: timedelta,
                now: datetime | None = None) -> IssuedToken:
    token = new_token()
    row = ApiToken(user_id=user.id, token_hash=token_digest(token),
                   expires_at=(now or utcnow()) + ttl)
    session.add(row)
    session.flush()
    return IssuedToken(token, row.id, row.expires_at)


def revoke_token(session: Session, token_id: str, now: datetime | None = None) -> None:
    row = session.get(ApiToken, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now or utcnow()


def revoke_user_tokens(session: Session, user_id: str, now: datetime) -> None:
    session.execute(sa.update(ApiToken)
                    .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                    .values(revoked_at=now).execution_options(synchronize_session=False))


# --- login --------------------------------------------------------------------------------


def _invalid_credentials(settings: Settings) -> DomainError:
    return DomainError("INVALID_CREDENTIALS", "email or password is wrong",
                       f"Check both and retry; {settings.login_max_failures} failures lock "
                       f"the email for {settings.login_window_minutes:g} minutes.", status=401)


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User
    token: IssuedToken
    step_up_until: datetime | None


def login(session: Session, *, email: str, password: str, code: str | None, address: str,
          now: datetime, settings: Settings, audit: AuditLog | None = None) -> LoginResult:
    """Check a login and issue a token. Every refused attempt counts as a failure of the
    email and of the client address, except a first step that only lacks its TOTP code.
    Success forgives the email's failures, never the address's (one's own account must
    not reset the counter of an address guessing at others). `audit` is annotated with
    the user the attempt names."""
    email = normalise_email(email)
    limit = throttle.Limit(settings.login_max_failures,
                           timedelta(minutes=settings.login_window_minutes))
    throttle.drop_read_snapshot(session)
    reservation = throttle.reserve(throttle.engine_of(session),
                                   [throttle.email_key(email), throttle.address_key(address)],
                                   limit, now)
    user = session.scalar(sa.select(User).where(User.email == email))
    if user is not None and audit is not None:
        audit.account_id, audit.target_type, audit.target_id = user.account_id, "user", user.id
    # Hold no transaction through the argon2 check or a cancel() on another connection: on
    # SQLite a request transaction holds the write lock from BEGIN (IMMEDIATE).
    stored_hash = user.password_hash if user else None
    throttle.drop_read_snapshot(session)
    pw = passwords(settings)
    if not pw.verify(stored_hash, password) or user is None:
        raise _invalid_credentials(settings)
    if user.disabled:
        reservation.cancel()
        raise DomainError("USER_DISABLED", "this user is disabled",
                          "Ask an admin of your account to enable it.", status=403)
    if user.totp_enabled and not code:
        reservation.cancel()
        raise DomainError("TOTP_REQUIRED", "two-factor authentication is on for this user",
                          "Send the current code of your authenticator app as 'totp'.",
                          status=401)
    user_id = user.id
    # A hash made at another cost is replaced now that the password is known.
    new_hash = pw.hash(password) if pw.needs_rehash(stored_hash or "") else None
    # The argon2 check above took a while; start the writing transaction afresh with a
    # write, so SQLite takes its lock before reading (see throttle.reserve).
    throttle.drop_read_snapshot(session)
    reservation.release_in(session)
    throttle.forgive(session, throttle.email_key(email))
    user = session.get(User, user_id, populate_existing=True)
    if user is None or user.disabled:
        raise _invalid_credentials(settings)
    step_up_until = None
    if user.totp_enabled:
        assert user.totp_secret is not None and code is not None
        totp.consume(session, user, user.totp_secret, code, now)
        user.step_up_until = step_up_until = now + timedelta(minutes=settings.step_up_minutes)
    if new_hash is not None:
        user.password_hash = new_hash
    issued = issue_token(session, user, timedelta(hours=settings.token_ttl_hours), now)
    if audit is not None:
        audit.actor = f"user:{user.id}"
    return LoginResult(user, issued, step_up_until)


def verify_totp(session: Session, user_id: str, code: str, *, now: datetime,
                settings: Settings) -> totp.Verified:
    """POST /api/2fa/verify: at most `totp_max_attempts` failed codes per window per user."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    if user.totp_pending_secret is None and not user.totp_enabled:
        raise totp.not_set_up()
    limit = throttle.Limit(settings.totp_max_attempts,
                           timedelta(minutes=settings.totp_window_minutes))
    throttle.drop_read_snapshot(session)
    reservation = throttle.reserve(throttle.engine_of(session), [throttle.totp_key(user_id)],
                                   limit, now, "TOTP")
    reservation.release_in(session)  # rolled back with a refusal: the failure then counts
    user = session.get(User, user_id, populate_existing=True)
    if user is None:
        raise NotFound("user")
    return totp.verify(session, user, code, now, timedelta(minutes=settings.step_up_minutes))


# --- an account's users and roles -------------------------------------------------------


def member(session: Session, account_id: str, user_id: str) -> User:
    """A user of `account_id`; another account's user is as unknown as a missing one."""
    if "\x00" in user_id:  # no id holds one, and PostgreSQL refuses the query outright
        raise NotFound("user")
    user = session.get(User, user_id)
    if user is None or user.account_id != account_id:
        raise NotFound("user")
    return user


def members(session: Session, account_id: str) -> list[User]:
    return list(session.scalars(sa.select(User).where(User.account_id == account_id)
                                .order_by(User.created_at, User.id)))


def _is_active_admin(role: str, disabled: bool) -> bool:
    return role == Role.ADMIN.value and not disabled


def _keep_an_admin(session: Session, user: User, role: str, disabled: bool) -> None:
    if not _is_active_admin(user.role, user.disabled) or _is_active_admin(role, disabled):
        return
    # Serialise admin changes of one account (PostgreSQL; SQLite serialises all writes).
    session.execute(sa.select(Account.id).where(Account.id == user.account_id).with_for_update())
    others = session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.account_id == user.account_id, User.id != user.id,
        User.role == Role.ADMIN.value, User.disabled.is_(False)))
    if not others:
        raise DomainError("LAST_ADMIN", "this is the last active admin of the account",
                          "Make another user an admin first.", status=409)


def update_member(session: Session, user: User, *, role: Role | None, disabled: bool | None,
                  now: datetime) -> User:
    new_role = role.value if role is not None else user.role
    new_disabled = user.disabled if disabled is None else disabled
    _keep_an_admin(session, user, new_role, new_disabled)
    if new_disabled and not user.disabled:
        revoke_user_tokens(session, user.id, now)
    user.role, user.disabled = new_role, new_disabled
    return user


def remove_member(session: Session, user: User) -> None:
    _keep_an_admin(session, user, Role.VIEWER.value, True)
    if session.scalar(sa.select(Approval.id).where(Approval.user_id == user.id).limit(1)):
        raise DomainError("USER_HAS_HISTORY", "this user signed live-promotion approvals, "
                          "which must keep naming them",
                          "Disable the user instead (PATCH disabled=true).", status=409)
    session.delete(user)  # its tokens go with it (ON DELETE CASCADE)
