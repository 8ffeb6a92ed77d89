"""The workers table: each worker process registers, heartbeats, and signs off."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from botwarden.domain.jobs import JobType
from botwarden.store.models import Worker

workers = cast(sa.Table, Worker.__table__)


def register_worker(conn: Connection, *, worker_id: str, hostname: str, pid: int,
                    job_types: Iterable[JobType], now: datetime) -> None:
    conn.execute(sa.insert(workers).values(
        id=worker_id, hostname=hostname, pid=pid, status="RUNNING",
        job_types=sorted(t.value for t in job_types), started_at=now, last_heartbeat_at=now))


def beat_worker(conn: Connection, worker_id: str, now: datetime) -> None:
    conn.execute(sa.update(workers).where(workers.c.id == worker_id)
                 .values(last_heartbeat_at=now))


def mark_worker(conn: Connection, worker_id: str, status: str, now: datetime) -> None:
    values: dict[str, Any] = {"status": status, "last_heartbeat_at": now}
    if status == "STOPPED":
        values["stopped_at"] = now
    conn.execute(sa.update(workers).where(workers.c.id == worker_id).values(**values))


def retire_silent_workers(conn: Connection, *, now: datetime, silent_for: timedelta) -> int:
    """Mark STOPPED the workers that stopped heartbeating without signing off (killed)."""
    cutoff = now - silent_for
    done = conn.execute(
        sa.update(workers)
        .where(workers.c.status != "STOPPED", workers.c.last_heartbeat_at < cutoff)
        .values(status="STOPPED", stopped_at=workers.c.last_heartbeat_at))
    return done.rowcount


def live_workers(conn: Connection, *, now: datetime, silent_for: timedelta) -> list[Row[Any]]:
    return list(conn.execute(
        sa.select(workers).where(workers.c.status != "STOPPED",
                                 workers.c.last_heartbeat_at >= now - silent_for)
        .order_by(workers.c.started_at)).all())


def stale_workers(conn: Connection, *, now: datetime, silent_for: timedelta) -> list[Row[Any]]:
    return list(conn.execute(
        sa.select(workers).where(workers.c.status != "STOPPED",
                                 workers.c.last_heartbeat_at < now - silent_for)).all())
