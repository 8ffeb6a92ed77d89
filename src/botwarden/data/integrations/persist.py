"""Integration status rows and events in the database, so that every process agrees.

A status change is written as a compare-and-set on the row's current status plus an
`integration_events` row in the same transaction: when two processes see the same change,
one writes it and the other finds the row already there and adds no duplicate event. The
read comes before the writing transaction, so on SQLite the writer's first statement takes
the write lock and waits for it instead of failing on a stale snapshot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from botwarden.clock import as_utc
from botwarden.data.integrations.status import IntegrationState, Transition
from botwarden.data.providers.errors import Health
from botwarden.ids import new_id
from botwarden.store.models import IntegrationEvent, IntegrationStatus

_TABLE = cast(sa.Table, IntegrationStatus.__table__)
_EVENTS = cast(sa.Table, IntegrationEvent.__table__)
_FIELDS = ("kind", "configured", "last_success_at", "last_error_code", "last_error",
           "last_error_at", "last_verified_at")


def load_state(engine: Engine, name: str) -> IntegrationState | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(_TABLE).where(_TABLE.c.name == name)).first()
    return None if row is None else state_from_row(row._mapping)


def load_states(engine: Engine) -> dict[str, IntegrationState]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_TABLE)).all()
    return {row.name: state_from_row(row._mapping) for row in rows}


def state_from_row(row: Any) -> IntegrationState:
    def when(key: str) -> datetime | None:
        value = row[key]
        return None if value is None else as_utc(value)

    return IntegrationState(
        name=row["name"], kind=row["kind"], configured=bool(row["configured"]),
        status=Health(row["status"]), last_success_at=when("last_success_at"),
        last_error_code=row["last_error_code"], last_error=row["last_error"],
        last_error_at=when("last_error_at"), last_verified_at=when("last_verified_at"),
    )


def _values(state: IntegrationState, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {key: getattr(state, key) for key in _FIELDS}
    values["updated_at"] = now
    return values


def save_state(engine: Engine, state: IntegrationState, transition: Transition | None,
               now: datetime) -> None:
    """Write `state`; when `transition` is given, change the status with a compare-and-set
    and record the event only if this writer made the change."""
    for _ in range(5):
        current = load_state(engine, state.name)
        try:
            with engine.begin() as conn:
                if current is None:
                    conn.execute(sa.insert(_TABLE).values(
                        name=state.name, status=state.status.value, **_values(state, now)))
                    changed = transition is not None
                else:
                    values = _values(state, now)
                    if transition is not None:
                        values["status"] = state.status.value
                    result = conn.execute(
                        sa.update(_TABLE)
                        .where(_TABLE.c.name == state.name,
                               _TABLE.c.status == current.status.value)
                        .values(**values))
                    if result.rowcount == 0:
                        continue  # another process changed the status meanwhile: re-read
                    changed = transition is not None and current.status is not state.status
                if changed and transition is not None:
                    conn.execute(sa.insert(_EVENTS).values(
                        id=new_id(), name=transition.name,
                        from_status=current.status.value if current else None,
                        to_status=transition.to_status.value, code=transition.code,
                        detail=transition.detail, created_at=transition.at))
                elif (transition is not None and current is not None
                      and transition.from_status is transition.to_status):
                    # A storm starting leaves the status as it is but is still an event.
                    conn.execute(sa.insert(_EVENTS).values(
                        id=new_id(), name=transition.name, from_status=current.status.value,
                        to_status=transition.to_status.value, code=transition.code,
                        detail=transition.detail, created_at=transition.at))
            return
        except IntegrityError:
            continue  # two first writers raced on the insert: the loser updates instead


def save_progress(engine: Engine, state: IntegrationState, now: datetime) -> None:
    """The last success, moved forward only, without touching the status (successes are
    many, so they are written with the telemetry flush rather than one by one)."""
    if state.last_success_at is None:
        return
    if load_state(engine, state.name) is None:
        save_state(engine, state, None, now)
        return
    column = _TABLE.c.last_success_at
    with engine.begin() as conn:
        conn.execute(
            sa.update(_TABLE)
            .where(_TABLE.c.name == state.name,
                   sa.or_(column.is_(None), column < state.last_success_at))
            .values(last_success_at=state.last_success_at, updated_at=now))


def record_event(engine: Engine, name: str, from_status: str | None, to_status: str,
                 code: str | None, detail: str | None, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(_EVENTS).values(
            id=new_id(), name=name, from_status=from_status, to_status=to_status, code=code,
            detail=detail, created_at=at))


def recent_events(engine: Engine, name: str | None = None, limit: int = 10
                  ) -> list[dict[str, Any]]:
    t = IntegrationEvent
    query = sa.select(t).order_by(t.created_at.desc(), t.id.desc()).limit(limit)
    if name is not None:
        query = query.where(t.name == name)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{
        "name": r.name, "from_status": r.from_status, "to_status": r.to_status,
        "code": r.code, "detail": r.detail, "at": as_utc(r.created_at),
    } for r in rows]
