"""Economic events in the database: the built-in table kept in sync, user files imported,
and range queries for the API and the risk engine."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from botwarden.clock import as_utc
from botwarden.data.econ_calendar import EconEvent, Impact, parse_events
from botwarden.data.econ_calendar_table import BUILTIN_SOURCE, builtin_events
from botwarden.ids import new_id
from botwarden.store.models import EconomicEvent

_TABLE = cast(sa.Table, EconomicEvent.__table__)
_KEY = ("at", "country", "name")


@dataclass(frozen=True, slots=True)
class LoadResult:
    inserted: int
    updated: int
    removed: int = 0


def _insert(engine: Engine) -> Any:
    return postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert


def _existing(conn: sa.Connection) -> dict[tuple[datetime, str, str], tuple[str, str]]:
    rows = conn.execute(sa.select(_TABLE.c.at, _TABLE.c.country, _TABLE.c.name,
                                  _TABLE.c.impact, _TABLE.c.source)).all()
    return {(as_utc(r.at), r.country, r.name): (r.impact, r.source) for r in rows}


def upsert_events(engine: Engine, events: Iterable[EconEvent]) -> LoadResult:
    """Insert new events; update the impact and source of known ones (same time, country
    and name). Idempotent: loading the same events twice changes nothing."""
    insert = _insert(engine)
    inserted = updated = 0
    with engine.begin() as conn:
        known = _existing(conn)
        for event in events:
            key = (event.at, event.country, event.name)
            before = known.get(key)
            if before == (event.impact.value, event.source):
                continue
            stmt = insert(_TABLE).values(id=new_id(), at=event.at, country=event.country,
                                         name=event.name, impact=event.impact.value,
                                         source=event.source)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=list(_KEY),
                set_={"impact": stmt.excluded.impact, "source": stmt.excluded.source}))
            known[key] = (event.impact.value, event.source)
            if before is None:
                inserted += 1
            else:
                updated += 1
    return LoadResult(inserted, updated)


def sync_builtin(engine: Engine) -> LoadResult:
    """Make the stored built-in events equal the built-in table: add what is missing and
    remove built-in rows the table no longer has (a rescheduled release)."""
    table = builtin_events()
    result = upsert_events(engine, table)
    wanted = {(e.at, e.country, e.name) for e in table}
    removed = 0
    with engine.begin() as conn:
        rows = conn.execute(sa.select(_TABLE.c.id, _TABLE.c.at, _TABLE.c.country,
                                      _TABLE.c.name).where(_TABLE.c.source == BUILTIN_SOURCE)
                            ).all()
        stale = [r.id for r in rows if (as_utc(r.at), r.country, r.name) not in wanted]
        if stale:
            removed = conn.execute(sa.delete(_TABLE).where(_TABLE.c.id.in_(stale))).rowcount
    return LoadResult(result.inserted, result.updated, int(removed or 0))


def import_file(engine: Engine, path: Path) -> LoadResult:
    fmt = "json" if path.suffix.lower() == ".json" else "csv"
    events = parse_events(path.read_text(encoding="utf-8"), fmt, source="import")
    return upsert_events(engine, events)


def query_events(engine: Engine, start: datetime | None = None, end: datetime | None = None,
                 impacts: Sequence[Impact] | None = None, limit: int = 1000) -> list[EconEvent]:
    """Events with `start <= at < end`, in time order."""
    query = sa.select(_TABLE).order_by(_TABLE.c.at, _TABLE.c.name).limit(limit)
    if start is not None:
        query = query.where(_TABLE.c.at >= start)
    if end is not None:
        query = query.where(_TABLE.c.at < end)
    if impacts:
        query = query.where(_TABLE.c.impact.in_([i.value for i in impacts]))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [EconEvent(as_utc(r.at), r.country, r.name, Impact(r.impact), r.source) for r in rows]
