"""Persistence of the per-bot circuit breakers (the rules are in domain/circuit_breaker.py).

`circuit_breakers.state` stores the state as of the last write, for readers that only
look; deciders load the breaker and ask the domain for its state now."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from botwarden.clock import as_utc
from botwarden.domain.circuit_breaker import Breaker, BreakerPolicy
from botwarden.store.db import insert_ignoring_duplicates
from botwarden.store.models import CircuitBreaker

breakers = cast(sa.Table, CircuitBreaker.__table__)
Executor = Connection | Session


def lock_breaker(conn: Executor, bot_id: str, now: datetime) -> Breaker:
    """The bot's breaker, its row created if missing and locked for the rest of the
    transaction, so that two loops recording failures at once cannot lose one."""
    insert_ignoring_duplicates(conn, breakers, bot_id=bot_id, state="CLOSED", failures=[],
                               updated_at=now)
    row = conn.execute(sa.select(breakers).where(breakers.c.bot_id == bot_id)
                       .with_for_update()).one()
    return _from_row(row)


def read_breaker(conn: Executor, bot_id: str) -> Breaker:
    row = conn.execute(sa.select(breakers).where(breakers.c.bot_id == bot_id)).first()
    return Breaker() if row is None else _from_row(row)


def _from_row(row: Any) -> Breaker:
    failures = tuple(sorted(as_utc(datetime.fromisoformat(t)) for t in row.failures))
    return Breaker(failures, row.opened_at)


def save_breaker(conn: Executor, bot_id: str, breaker: Breaker, *, now: datetime,
                 policy: BreakerPolicy) -> None:
    settled = breaker.settle(now, policy)
    conn.execute(sa.update(breakers).where(breakers.c.bot_id == bot_id).values(
        state=settled.state(now, policy).value,
        failures=[t.isoformat() for t in settled.failures],
        opened_at=settled.opened_at, updated_at=now))


def refresh_breakers(conn: Executor, *, now: datetime, policy: BreakerPolicy) -> int:
    """Bring the stored state of every breaker that is not CLOSED up to date (OPEN turns
    HALF_OPEN, HALF_OPEN turns CLOSED with time); returns how many changed."""
    changed = 0
    for row in conn.execute(sa.select(breakers).where(breakers.c.state != "CLOSED")).all():
        breaker = _from_row(row)
        if breaker.state(now, policy).value != row.state:
            save_breaker(conn, row.bot_id, breaker, now=now, policy=policy)
            changed += 1
    return changed
