"""Jobs and the scheduler's loops: list, read, events, heartbeat, cancel, timeouts, and the
loops' state and on-demand runs. Every job query is scoped to the caller's account; a job
of another account answers 404 like a missing one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, guard
from botwarden.api.routers.health import READINESS_CHECKS
from botwarden.clock import utcnow
from botwarden.domain.errors import DomainError, NotFound
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.policy import Action
from botwarden.store import jobs as job_store
from botwarden.workers.background import readiness
from botwarden.workers.scheduler import list_tasks, summary, trigger_task

MAX_OFFSET = 1_000_000_000  # past any real listing, within every database's integers

router = APIRouter(tags=["jobs"])


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    bot_id: str | None
    job_type: str
    status: str
    status_reason_code: str | None
    status_reason: str | None
    priority: int
    payload: dict[str, Any]
    result: dict[str, Any] | None
    progress: float
    attempts: int
    max_attempts: int
    run_after: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_heartbeat_at: datetime | None
    trace_id: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class JobEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    from_status: str | None
    to_status: str
    reason_code: str | None
    reason: str | None
    actor: str
    trace_id: str | None
    created_at: datetime


def _job(session: Session, principal: Principal | None, job_id: str) -> Any:
    row = job_store.get_job(session, job_id,
                            account_id=principal.account_id if principal else "")
    if row is None:
        raise NotFound("job")
    return row


def _out(rows: list[Any]) -> list[JobOut]:
    return [JobOut.model_validate(r) for r in rows]


@router.get("/api/jobs", response_model=list[JobOut])
def list_jobs(
    bot_id: str | None = Query(None, max_length=64),
    type: JobType | None = Query(None, description="a job type, e.g. BACKTEST"),  # noqa: A002
    status: JobStatus | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[JobOut]:
    """The account's jobs, newest first."""
    return _out(job_store.list_jobs(session, account_id=principal.account_id, bot_id=bot_id,
                                    job_type=type, status=status, limit=limit, offset=offset))


@router.get("/api/jobs/timed-out", response_model=list[JobOut])
def timed_out(limit: int = Query(100, ge=1, le=1000),
              principal: Principal = Depends(current_principal),
              session: Session = Depends(get_session)) -> list[JobOut]:
    """Jobs the timeout worker ended (TIMEOUT, HEARTBEAT_TIMEOUT), newest first."""
    return _out(job_store.list_jobs(session, account_id=principal.account_id,
                                    status=JobStatus.TIMEOUT, limit=limit))


class TimeoutStaleOut(BaseModel):
    timed_out: int
    job_ids: list[str]


@router.post("/api/jobs/timeout-stale", response_model=TimeoutStaleOut)
def timeout_stale(request: Request,
                  ctx: Guarded = Depends(guard(Action.JOBS_TIMEOUT_STALE))) -> TimeoutStaleOut:
    """Run the timeout worker now; answers with this account's jobs it timed out."""
    assert ctx.principal is not None
    ctx.commit()  # the loop writes in transactions of its own; SQLite has one writer
    outcome = trigger_task(request.app.state.engine, request.app.state.settings,
                           "timeout_worker")
    ours = [job_id for job_id in outcome["result"].get("job_ids", [])
            if _owned(ctx.session, ctx.principal, job_id)]
    return TimeoutStaleOut(timed_out=len(ours), job_ids=ours)


def _owned(session: Session, principal: Principal, job_id: str) -> bool:
    return job_store.get_job(session, job_id, account_id=principal.account_id) is not None


@router.get("/api/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, principal: Principal = Depends(current_principal),
            session: Session = Depends(get_session)) -> JobOut:
    return JobOut.model_validate(_job(session, principal, job_id))


@router.get("/api/jobs/{job_id}/events", response_model=list[JobEventOut])
def job_events(job_id: str, principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> list[JobEventOut]:
    """Every transition of the job, oldest first."""
    events = job_store.job_events(session, _job(session, principal, job_id).id)
    return [JobEventOut.model_validate(e) for e in events]


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lease_token: str = Field(min_length=1, max_length=64)
    progress: float | None = Field(default=None, ge=0.0, le=1.0)


class HeartbeatOut(BaseModel):
    job_id: str
    lease_expires_at: datetime | None


@router.post("/api/jobs/{job_id}/heartbeat", response_model=HeartbeatOut)
def heartbeat(job_id: str, body: HeartbeatIn, request: Request,
              ctx: Guarded = Depends(guard(Action.JOB_HEARTBEAT))) -> HeartbeatOut:
    """From the job's own worker, with the lease token of its claim; renews the lease."""
    job = _job(ctx.session, ctx.principal, job_id)
    ctx.audit.target_type, ctx.audit.target_id = "job", job.id
    lease = job_store.Lease(job.id, body.lease_token)
    if not job_store.heartbeat(ctx.session, lease, now=utcnow(), progress=body.progress,
                               lease_seconds=request.app.state.settings.job_lease_seconds):
        raise DomainError("LEASE_LOST", "this lease is no longer the job's",
                          "Stop working on the job: it was requeued, timed out or cancelled.")
    ctx.commit()
    return HeartbeatOut(job_id=job.id, lease_expires_at=_job(ctx.session, ctx.principal,
                                                             job_id).lease_expires_at)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="cancelled on request", max_length=1000)


@router.post("/api/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, body: CancelIn | None = None,
           ctx: Guarded = Depends(guard(Action.JOB_CANCEL))) -> JobOut:
    """Cancel an unfinished job; a running one stops at its worker's next heartbeat.
    A finished job answers 409 JOB_TERMINAL."""
    assert ctx.principal is not None
    job = _job(ctx.session, ctx.principal, job_id)
    ctx.audit.target_type, ctx.audit.target_id = "job", job.id
    row = job_store.cancel_job(ctx.session, job.id, account_id=ctx.principal.account_id,
                               actor=ctx.actor_label, now=utcnow(),
                               reason=(body or CancelIn()).reason)
    ctx.commit()
    return JobOut.model_validate(row)


# --- the scheduler -------------------------------------------------------------------------


class TaskOut(BaseModel):
    name: str
    interval_seconds: float
    last_run_at: datetime | None
    last_ok: bool | None
    last_result: dict[str, Any] | None
    next_run_at: datetime | None
    run_count: int
    running: bool
    stale: bool


class SchedulerOut(BaseModel):
    tasks: list[TaskOut]


@router.get("/api/scheduler", response_model=SchedulerOut)
def scheduler(request: Request,
              principal: Principal = Depends(current_principal)) -> SchedulerOut:
    """Every self-healing loop: interval, last run and its result, next run."""
    tasks = list_tasks(request.app.state.engine, request.app.state.settings)
    return SchedulerOut(tasks=[TaskOut(**t) for t in tasks])


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str = Field(min_length=1, max_length=64)


class TriggerOut(BaseModel):
    task: str
    ok: bool
    result: dict[str, Any]


@router.post("/api/scheduler/trigger", response_model=TriggerOut)
def trigger(body: TriggerIn, request: Request,
            ctx: Guarded = Depends(guard(Action.SCHEDULER_TRIGGER))) -> TriggerOut:
    """Run one loop now, once (its schedule is kept). Unknown name: 404 UNKNOWN_TASK."""
    ctx.audit.target_type, ctx.audit.target_id = "scheduler_task", body.task
    ctx.commit()  # the loop writes in transactions of its own; SQLite has one writer
    outcome = trigger_task(request.app.state.engine, request.app.state.settings, body.task)
    return TriggerOut(task=outcome["task"], ok=outcome["ok"], result=summary(outcome["result"]))


def workers_readiness(app: FastAPI) -> tuple[str, bool, dict[str, Any]]:
    """Live and stale workers and loops. A server that runs workers (`run_workers`) is not
    ready without a live worker and fresh loops; one that does not only reports them."""
    ok, detail = readiness(app.state.engine, app.state.settings)
    return "workers", ok or not app.state.settings.run_workers, detail


READINESS_CHECKS.append(workers_readiness)
