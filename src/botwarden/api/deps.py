"""Request-scoped dependencies: the database session and the authenticated principal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.api.errors import ApiError
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.trading import Role
from botwarden.policy import ActorFacts
from botwarden.services.tokens import token_digest
from botwarden.store.models import ApiToken, User

bearer = HTTPBearer(auto_error=False, description="Token from POST /api/auth/login")


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    session: Session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()


async def sqlite_writer_turn(request: Request) -> AsyncIterator[None]:
    """On SQLite, one mutation of this process at a time, queued on the event loop.

    SQLite has one writer, and a mutation holds the write lock from its first query to its
    commit, across several hops between the event loop and worker threads. Were the others
    to wait for it inside worker threads (in SQLite's busy handler), enough of them would
    take every thread of the pool while the holder waits for one to go on: under 32
    concurrent mutations the server stalled for the busy timeout. Waiting here takes no
    thread, and leaves SQLite's own lock to arbitrate between processes only."""
    engine = request.app.state.engine
    if engine.dialect.name != "sqlite":
        yield
        return
    async with _writer_turn(engine):
        yield


# Per event loop (an asyncio lock belongs to one), per engine; used on the loop only.
_TURNS: WeakKeyDictionary[asyncio.AbstractEventLoop, WeakKeyDictionary[Engine, asyncio.Lock]] = (
    WeakKeyDictionary())


def _writer_turn(engine: Engine) -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    if loop not in _TURNS:
        _TURNS[loop] = WeakKeyDictionary()
    if engine not in _TURNS[loop]:
        _TURNS[loop][engine] = asyncio.Lock()
    return _TURNS[loop][engine]


def get_write_session(
    request: Request, _turn: None = Depends(sqlite_writer_turn)
) -> Iterator[Session]:
    """A session for a mutation. On SQLite its first transaction takes the write lock at
    BEGIN (IMMEDIATE): a transaction that reads (the guard's checks) and then writes would
    otherwise fail at once whenever another writer committed in between."""
    engine = request.app.state.engine
    if engine.dialect.name != "sqlite":
        yield from get_session(request)
        return
    with engine.connect() as conn:
        conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        session = Session(bind=conn, expire_on_commit=False, autoflush=False)
        try:
            yield session
        finally:
            session.close()
            conn.info.pop("sqlite_begin", None)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    account_id: str
    email: str
    role: Role
    token_id: str
    totp_enabled: bool
    step_up_until: datetime | None

    @property
    def actor(self) -> ActorFacts:
        return ActorFacts(self.user_id, self.account_id, self.role, self.step_up_until)

    @property
    def label(self) -> str:
        return f"user:{self.user_id}"


UNAUTHENTICATED = ("UNAUTHENTICATED", "Log in (POST /api/auth/login) and send "
                   "'Authorization: Bearer <token>'.")


def authenticate(session: Session, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, UNAUTHENTICATED[0], "missing bearer token", UNAUTHENTICATED[1])
    now = utcnow()
    row = session.execute(
        sa.select(ApiToken.id, ApiToken.expires_at, ApiToken.revoked_at, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_digest(credentials.credentials))
    ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.User.disabled:
        raise ApiError(401, UNAUTHENTICATED[0], "invalid, expired or revoked token",
                       UNAUTHENTICATED[1])
    user: User = row.User
    return Principal(user.id, user.account_id, user.email, Role(user.role), row.id,
                     user.totp_enabled, user.step_up_until)


def current_principal(
    session: Session = Depends(get_session),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Principal:
    return authenticate(session, credentials)
