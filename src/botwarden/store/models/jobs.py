"""Jobs, their event trail, workers and the scheduler's loop records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.domain.jobs import JobStatus, JobType
from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import JSONType, UTCDateTime

_TERMINAL = "('COMPLETED', 'FAILED', 'CANCELED', 'TIMEOUT')"
# At most one unfinished runner per bot, enforced by the database itself: two starts racing
# cannot both win, and a restart must end the old job before creating the new one.
_ACTIVE_RUNNER = sa.text(
    "job_type = 'RUNNER' AND status IN ('CREATED', 'QUEUED', 'RUNNING', 'DEGRADED', 'BLOCKED')")


class BotJob(Base):
    __tablename__ = "bot_jobs"

    id: Mapped[str] = pk()
    account_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # Research jobs may run a strategy without a bot; RUNNER, RECONCILE and PROMOTION
    # jobs always belong to one (checked below), and a bot's jobs die with it.
    bot_id: Mapped[str | None] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), index=True
    )
    job_type: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="QUEUED")
    priority: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    progress: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=3)
    run_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(sa.String(120))
    lease_token: Mapped[str | None] = mapped_column(sa.String(32))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_reason_code: Mapped[str | None] = mapped_column(sa.String(64))
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    trace_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = now_column()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        one_of("job_type", [t.value for t in JobType], "job_type"),
        one_of("status", [s.value for s in JobStatus], "status"),
        sa.CheckConstraint(
            f"status NOT IN {_TERMINAL} OR completed_at IS NOT NULL", name="terminal_completed"
        ),
        sa.CheckConstraint(
            "status NOT IN ('FAILED', 'CANCELED', 'TIMEOUT') OR status_reason_code IS NOT NULL",
            name="terminal_reason",
        ),
        sa.CheckConstraint(
            "job_type NOT IN ('RUNNER', 'RECONCILE', 'PROMOTION') OR bot_id IS NOT NULL",
            name="bot_bound_types",
        ),
        sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        sa.Index("ix_bot_jobs_claim", "status", "run_after", "priority"),
        sa.Index("ix_bot_jobs_lease", "status", "lease_expires_at"),
        sa.Index("uq_bot_jobs_one_active_runner", "bot_id", unique=True,
                 sqlite_where=_ACTIVE_RUNNER, postgresql_where=_ACTIVE_RUNNER),
    )


class JobRunEvent(Base):
    __tablename__ = "job_run_events"

    id: Mapped[str] = pk()
    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bot_jobs.id", ondelete="CASCADE"), nullable=False
    )
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    reason_code: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    actor: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    trace_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (sa.Index("ix_job_run_events_job_created", "job_id", "created_at"),)


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    hostname: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    pid: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="RUNNING")
    job_types: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    started_at: Mapped[datetime] = now_column()
    last_heartbeat_at: Mapped[datetime] = now_column()
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (one_of("status", ("RUNNING", "STOPPING", "STOPPED"), "status"),)


class SchedulerTask(Base):
    """One self-healing loop. The lease columns make it run in one process at a time."""

    __tablename__ = "scheduler_tasks"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    interval_seconds: Mapped[float] = mapped_column(sa.Float, nullable=False)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    last_ok: Mapped[bool | None] = mapped_column(sa.Boolean)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    run_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    lock_owner: Mapped[str | None] = mapped_column(sa.String(120))
    lock_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
