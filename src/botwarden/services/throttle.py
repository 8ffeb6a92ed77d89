"""Attempt throttling for logins and TOTP codes, counted in the `login_failures` table so the
limit holds across every server process that shares the database.

An attempt *reserves* a failure row per key before it is checked, commits it, and only then
counts. Of two concurrent attempts at least one therefore sees the other, so no more than
`max_failures` attempts are ever admitted in a window, whatever the number of processes.
An attempt that turns out not to be a failure removes its rows again: `release_in` deletes
them inside the request's own transaction, so they disappear only if that transaction
commits (a refusal rolls back and the failure stays counted)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.ids import new_id
from botwarden.store.models import LoginFailure


@dataclass(frozen=True, slots=True)
class Limit:
    max_failures: int
    window: timedelta


class TooManyAttempts(DomainError):
    """429 with `Retry-After`: the seconds until enough failures leave the window."""

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__("RATE_LIMITED", f"too many failed {what} attempts",
                         f"Wait {retry_after} s (Retry-After), then retry.", status=429,
                         details={"retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


def email_key(email: str) -> str:
    return f"login:email:{email}"


def address_key(address: str) -> str:
    return f"login:address:{address}"


def totp_key(user_id: str) -> str:
    return f"totp:user:{user_id}"


@dataclass(frozen=True, slots=True)
class Reservation:
    row_ids: tuple[str, ...]
    engine: Engine

    def release_in(self, session: Session) -> None:
        """Not a failure after all, if `session`'s transaction commits. On SQLite this write
        also takes the database's write lock, so issue it before the transaction's reads."""
        session.execute(sa.delete(LoginFailure).where(LoginFailure.id.in_(self.row_ids)),
                        execution_options={"synchronize_session": False})

    def cancel(self) -> None:
        """Not a failure, decided right away (the request is refused for another reason)."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(LoginFailure).where(LoginFailure.id.in_(self.row_ids)))


def reserve(engine: Engine, keys: Sequence[str], limit: Limit, now: datetime,
            what: str = "login") -> Reservation:
    """Count one attempt under each key; raise `TooManyAttempts` when any key already has
    `limit.max_failures` failures in the window (that refused attempt is not counted).

    Runs on its own connections and commits at once. On SQLite a request session that has
    already read must end its transaction first (`drop_read_snapshot`), or its next write
    would fail: SQLite refuses a write from a snapshot older than the newest commit."""
    since = now - limit.window
    ids = {key: new_id() for key in keys}
    with engine.begin() as conn:
        # Rows that left the window are of no further use; the index makes this cheap.
        conn.execute(sa.delete(LoginFailure).where(LoginFailure.key.in_(keys),
                                                   LoginFailure.created_at <= since))
        conn.execute(sa.insert(LoginFailure),
                     [{"id": ids[key], "key": key, "created_at": now} for key in keys])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(LoginFailure.id, LoginFailure.key, LoginFailure.created_at)
            .where(LoginFailure.key.in_(keys), LoginFailure.created_at > since)
        ).all()
    own = set(ids.values())
    retry_after = 0
    for key in keys:
        earlier = sorted(r.created_at for r in rows if r.key == key and r.id not in own)
        excess = len(earlier) - limit.max_failures
        if excess >= 0:
            # The attempt fits once the (excess+1) oldest failures have left the window.
            frees_at = earlier[excess] + limit.window
            retry_after = max(retry_after, math.ceil((frees_at - now).total_seconds()), 1)
    reservation = Reservation(tuple(ids.values()), engine)
    if retry_after:
        reservation.cancel()
        raise TooManyAttempts(retry_after, what)
    return reservation


def forgive(session: Session, key: str) -> None:
    """Erase every failure under `key`, in `session`'s transaction."""
    session.execute(sa.delete(LoginFailure).where(LoginFailure.key == key),
                    execution_options={"synchronize_session": False})


def engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def drop_read_snapshot(session: Session) -> None:
    """End the session's open transaction (it has only read) before the throttle commits on
    its own connection. Pending audit rows stay queued: they ride on the next commit."""
    if session.in_transaction():
        session.rollback()
