"""The job repository: creation, the claim with its lease and fencing token, fenced writes,
and the job_run_events row written in the same transaction as every status change.

Every status change here is conditional: its UPDATE names the status (and lease token) it
expects, or the rows are locked and checked first, and the event row is written only for a
change that happened. Writes of a lease holder carry its token, so once a job has been
requeued, timed out or cancelled (all of which clear the token) nothing its former holder
sends is accepted any more.
Callers own the transaction (on SQLite, take it with `store.db.write_transaction`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Row
from sqlalchemy.orm import Session

from botwarden.clock import as_utc, strictly_after
from botwarden.domain.errors import DomainError, NotFound
from botwarden.domain.job_machine import HELD, JobReason, Transition, check_transition
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.ids import new_id
from botwarden.store.models import BotJob, JobRunEvent

jobs = cast(sa.Table, BotJob.__table__)
events = cast(sa.Table, JobRunEvent.__table__)
Executor = Connection | Session


@dataclass(frozen=True, slots=True)
class Lease:
    job_id: str
    token: str


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: str
    account_id: str
    bot_id: str | None
    job_type: JobType
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    trace_id: str | None
    started_at: datetime
    lease: Lease


def _event(job_id: str, t: Transition, actor: str, trace_id: str | None,
           now: datetime) -> dict[str, Any]:
    return {"id": new_id(), "job_id": job_id, "from_status": t.from_status,
            "to_status": t.to_status.value, "reason_code": t.reason_code, "reason": t.reason,
            "actor": actor, "trace_id": trace_id, "created_at": now}


def _record_events(conn: Executor, entries: Sequence[tuple[str, Transition, str, str | None]],
                   now: datetime) -> None:
    """Insert (job id, transition, actor, trace id) events, each dated after its job's last
    event. `now` is read before the statement that saw the job's state, and another process
    may have changed that state in between at a later time of its own (a supervisor's
    requeue, then a worker's claim on a `now` read just before it): the trail must still
    sort in the order things happened, and ids of two processes do not break a tie."""
    last = {job_id: as_utc(at) for job_id, at in conn.execute(
        sa.select(events.c.job_id, sa.func.max(events.c.created_at))
        .where(events.c.job_id.in_({e[0] for e in entries})).group_by(events.c.job_id))}
    conn.execute(sa.insert(events), [
        _event(job_id, t, actor, trace_id, strictly_after(last.get(job_id), now))
        for job_id, t, actor, trace_id in entries])


def _changed(conn: Executor, statement: sa.Update) -> int:
    """Rows an UPDATE matched (Session.execute hands back the same cursor result)."""
    return cast(CursorResult[Any], conn.execute(statement)).rowcount


def _status_values(t: Transition, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"status": t.to_status.value, "status_reason_code": t.reason_code,
                              "status_reason": t.reason}
    if not t.keeps_lease:
        values.update(lease_owner=None, lease_token=None, lease_expires_at=None)
    if t.ends_job:
        values["completed_at"] = now
    return values


def create_job(conn: Executor, *, account_id: str, job_type: JobType, actor: str,
               now: datetime, payload: dict[str, Any] | None = None, bot_id: str | None = None,
               priority: int = 0, max_attempts: int = 3, run_after: datetime | None = None,
               trace_id: str | None = None, status: JobStatus = JobStatus.QUEUED) -> str:
    """One job with its creation event (see `create_jobs`)."""
    return create_jobs(conn, account_id=account_id, job_type=job_type, actor=actor, now=now,
                       payloads=[payload or {}], bot_id=bot_id, priority=priority,
                       max_attempts=max_attempts, run_after=run_after, trace_id=trace_id,
                       status=status)[0]


def create_jobs(
    conn: Executor,
    *,
    account_id: str,
    job_type: JobType,
    actor: str,
    now: datetime,
    payloads: Sequence[dict[str, Any]],
    bot_id: str | None = None,
    priority: int = 0,
    max_attempts: int = 3,
    run_after: datetime | None = None,
    trace_id: str | None = None,
    status: JobStatus = JobStatus.QUEUED,
) -> list[str]:
    """Jobs of one kind, one per payload, each with its creation event, in two statements."""
    t = check_transition(None, status)
    ids = [new_id() for _ in payloads]
    conn.execute(sa.insert(jobs), [
        {"id": job_id, "account_id": account_id, "bot_id": bot_id, "job_type": job_type.value,
         "status": status.value, "priority": priority, "payload": payload, "progress": 0.0,
         "attempts": 0, "max_attempts": max_attempts, "run_after": run_after,
         "trace_id": trace_id, "created_at": now}
        for job_id, payload in zip(ids, payloads, strict=True)])
    conn.execute(sa.insert(events), [_event(job_id, t, actor, trace_id, now) for job_id in ids])
    return ids


# --- the holder's side: claim, renew, fenced transitions ---------------------------------


def claim_jobs(
    conn: Executor,
    *,
    owner: str,
    types: Iterable[JobType],
    limit: int,
    lease_seconds: float,
    now: datetime,
) -> list[ClaimedJob]:
    """Claim up to `limit` runnable jobs for `owner`: FOR UPDATE SKIP LOCKED on PostgreSQL
    (claimers never wait on each other); on SQLite the caller's write transaction
    (`write_transaction`) holds the lock. One fresh token fences the whole batch; every
    later write names the job too."""
    type_values = [t.value for t in types]
    if limit <= 0 or not type_values:
        return []
    token = secrets.token_hex(16)
    # A materialised CTE joined by UPDATE ... FROM, not `id IN (subquery)`: PostgreSQL may
    # rescan an IN subquery per row, and a rescanned LIMIT ... SKIP LOCKED returns more.
    picked = (
        sa.select(jobs.c.id)
        .where(jobs.c.status == JobStatus.QUEUED.value, jobs.c.job_type.in_(type_values),
               sa.or_(jobs.c.run_after.is_(None), jobs.c.run_after <= now))
        .order_by(jobs.c.priority.desc(), jobs.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
        .prefix_with("MATERIALIZED")
    )
    t = check_transition(JobStatus.QUEUED, JobStatus.RUNNING)
    claim = (
        sa.update(jobs)
        .where(jobs.c.id == picked.c.id, jobs.c.status == JobStatus.QUEUED.value)
        .values(**_status_values(t, now), lease_owner=owner, lease_token=token,
                lease_expires_at=now + timedelta(seconds=lease_seconds), run_after=None,
                attempts=jobs.c.attempts + 1, started_at=now, last_heartbeat_at=now)
        .returning(jobs.c.id, jobs.c.account_id, jobs.c.bot_id, jobs.c.job_type,
                   jobs.c.payload, jobs.c.attempts, jobs.c.max_attempts, jobs.c.trace_id)
    )
    rows = conn.execute(claim).all()
    if rows:
        _record_events(conn, [(r.id, t, owner, r.trace_id) for r in rows], now)
    return [ClaimedJob(r.id, r.account_id, r.bot_id, JobType(r.job_type), r.payload,
                       r.attempts, r.max_attempts, r.trace_id, now, Lease(r.id, token))
            for r in sorted(rows, key=lambda r: r.id)]


@dataclass(frozen=True, slots=True)
class Beat:
    """What a holder's heartbeat writes for one job: the handler's last sign of life."""

    lease: Lease
    beat_at: datetime
    progress: float | None = None


def renew_leases(
    conn: Executor, beats: Sequence[Beat], *, now: datetime, lease_seconds: float
) -> set[str]:
    """Extend the leases and record the heartbeats; returns the ids still held. A job
    missing from the answer was taken away (requeued, timed out, cancelled)."""
    if not beats:
        return set()
    expires = now + timedelta(seconds=lease_seconds)
    stmt = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("b_id"), jobs.c.lease_token == sa.bindparam("b_token"))
        .values(lease_expires_at=expires, last_heartbeat_at=sa.bindparam("b_beat"),
                progress=sa.func.coalesce(sa.bindparam("b_progress", type_=sa.Float),
                                          jobs.c.progress))
    )
    conn.execute(stmt, [{"b_id": b.lease.job_id, "b_token": b.lease.token,
                         "b_beat": b.beat_at, "b_progress": b.progress} for b in beats])
    tokens = {b.lease.token for b in beats}
    held = conn.execute(sa.select(jobs.c.id, jobs.c.lease_token)
                        .where(jobs.c.id.in_([b.lease.job_id for b in beats]))).all()
    return {r.id for r in held if r.lease_token in tokens}


def heartbeat(conn: Executor, lease: Lease, *, now: datetime, lease_seconds: float,
              progress: float | None = None) -> bool:
    return lease.job_id in renew_leases(conn, [Beat(lease, now, progress)], now=now,
                                        lease_seconds=lease_seconds)


def holds_lease(conn: Executor, lease: Lease) -> bool:
    """Whether the lease is still the job's, locking the row for the rest of the
    transaction (on SQLite the write transaction already excludes other writers)."""
    row = conn.execute(sa.select(jobs.c.id).where(jobs.c.id == lease.job_id,
                                                  jobs.c.lease_token == lease.token)
                       .with_for_update()).first()
    return row is not None


def transition_leased(
    conn: Executor,
    lease: Lease,
    current: JobStatus,
    target: JobStatus,
    *,
    actor: str,
    now: datetime,
    trace_id: str | None = None,
    reason_code: str | None = None,
    reason: str | None = None,
    result: dict[str, Any] | None = None,
    run_after: datetime | None = None,
    refund_attempt: bool = False,
) -> bool:
    """A status change by the lease holder; False when its token is no longer the job's."""
    t = check_transition(current, target, reason_code, reason)
    values = _status_values(t, now)
    if result is not None:
        values["result"] = result
    if target is JobStatus.COMPLETED:
        values["progress"] = 1.0
    if run_after is not None:
        values["run_after"] = run_after
    if refund_attempt:  # released unfinished at shutdown: that attempt does not count
        values["attempts"] = jobs.c.attempts - 1
    done = _changed(conn, sa.update(jobs)
                    .where(jobs.c.id == lease.job_id, jobs.c.lease_token == lease.token,
                           jobs.c.status == current.value)
                    .values(**values))
    if done != 1:
        return False
    _record_events(conn, [(lease.job_id, t, actor, trace_id)], now)
    return True


@dataclass(frozen=True, slots=True)
class Completion:
    job: ClaimedJob
    current: JobStatus  # RUNNING or DEGRADED, as its holder knows it
    result: dict[str, Any]


def complete_jobs(conn: Executor, done: Sequence[Completion], *, actor: str,
                  now: datetime) -> set[str]:
    """Complete many jobs of one holder in the caller's transaction (a worker commits its
    finished jobs together with its next claim); returns the ids accepted. The rows are
    locked first, so a job whose token still matches cannot change until commit."""
    if not done:
        return set()
    rows = conn.execute(sa.select(jobs.c.id, jobs.c.lease_token, jobs.c.status)
                        .where(jobs.c.id.in_([c.job.id for c in done])).with_for_update()).all()
    current = {r.id: (r.lease_token, r.status) for r in rows}
    accepted = [c for c in done if current.get(c.job.id) == (c.job.lease.token, c.current.value)]
    if not accepted:
        return set()
    t = check_transition(JobStatus.RUNNING, JobStatus.COMPLETED)
    conn.execute(
        sa.update(jobs).where(jobs.c.id == sa.bindparam("c_id"))
        .values(**_status_values(t, now), progress=1.0, result=sa.bindparam("c_result")),
        [{"c_id": c.job.id, "c_result": c.result} for c in accepted])
    _record_events(conn, [(c.job.id, Transition(c.current, JobStatus.COMPLETED), actor,
                           c.job.trace_id) for c in accepted], now)
    return {c.job.id for c in accepted}


# --- everyone else's side: supervisor, timeout worker, cancel -----------------------------


def transition_observed(
    conn: Executor,
    row: Row[Any],
    target: JobStatus,
    *,
    actor: str,
    now: datetime,
    reason_code: str | None = None,
    reason: str | None = None,
    run_after: datetime | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> bool:
    """Move a job that was read as `row`, provided it is still as read (same status, same
    lease token) and still matches `where`; otherwise nothing changes and False."""
    t = check_transition(JobStatus(row.status), target, reason_code, reason)
    values = _status_values(t, now)
    if run_after is not None:
        values["run_after"] = run_after
    same_token = (jobs.c.lease_token.is_(None) if row.lease_token is None
                  else jobs.c.lease_token == row.lease_token)
    done = _changed(conn, sa.update(jobs).where(jobs.c.id == row.id,
                                                jobs.c.status == row.status,
                                                same_token, *where).values(**values))
    if done != 1:
        return False
    _record_events(conn, [(row.id, t, actor, row.trace_id)], now)
    return True


def _locked(query: sa.Select[Any]) -> sa.Select[Any]:
    """Rows another supervisor is already handling are skipped (PostgreSQL); SQLite has no
    row locks and relies on the write transaction instead."""
    return query.with_for_update(skip_locked=True)


def expired_leases(conn: Executor, *, now: datetime, limit: int = 500) -> list[Row[Any]]:
    """Held jobs whose lease ran out: their holder died or stalled."""
    query = (sa.select(jobs).where(jobs.c.status.in_([s.value for s in HELD]),
                                   jobs.c.lease_expires_at < now)
             .order_by(jobs.c.lease_expires_at).limit(limit))
    return list(conn.execute(_locked(query)).all())


def quiet_jobs(conn: Executor, *, now: datetime, quiet_for: timedelta,
               limit: int = 500) -> list[Row[Any]]:
    """Held jobs, lease still valid, whose handler has not beaten for `quiet_for`: the
    candidates of the timeout worker, which applies each type's own timeout."""
    query = (sa.select(jobs).where(jobs.c.status.in_([s.value for s in HELD]),
                                   jobs.c.lease_expires_at >= now,
                                   jobs.c.last_heartbeat_at < now - quiet_for)
             .order_by(jobs.c.last_heartbeat_at).limit(limit))
    return list(conn.execute(_locked(query)).all())


def blocked_jobs(conn: Executor, *, reason_code: str, limit: int = 500) -> list[Row[Any]]:
    query = (sa.select(jobs).where(jobs.c.status == JobStatus.BLOCKED.value,
                                   jobs.c.status_reason_code == reason_code)
             .order_by(jobs.c.id).limit(limit))
    return list(conn.execute(_locked(query)).all())


def cancel_job(conn: Executor, job_id: str, *, account_id: str | None, actor: str,
               now: datetime, reason: str = "cancelled on request") -> Row[Any]:
    """Cancel any unfinished job; its holder, if any, loses the lease with it and stops at
    its next heartbeat. A finished job answers JOB_TERMINAL."""
    for _ in range(5):  # again only when the job changed between our read and our write
        row = get_job(conn, job_id, account_id=account_id)
        if row is None:
            raise NotFound("job")
        if transition_observed(conn, row, JobStatus.CANCELED, actor=actor, now=now,
                               reason_code=JobReason.CANCELED_BY_USER.value, reason=reason):
            changed = get_job(conn, job_id)
            assert changed is not None
            return changed
    raise DomainError("JOB_BUSY", "the job kept changing while being cancelled",
                      "Retry the cancel.")


# --- reads ----------------------------------------------------------------------------------


def get_job(conn: Executor, job_id: str, *, account_id: str | None = None) -> Row[Any] | None:
    """One job; with `account_id`, another account's job reads as missing."""
    query = sa.select(jobs).where(jobs.c.id == job_id)
    if account_id is not None:
        query = query.where(jobs.c.account_id == account_id)
    return conn.execute(query).first()


def list_jobs(
    conn: Executor,
    *,
    account_id: str,
    bot_id: str | None = None,
    job_type: JobType | None = None,
    status: JobStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Row[Any]]:
    query = sa.select(jobs).where(jobs.c.account_id == account_id)
    if bot_id is not None:
        query = query.where(jobs.c.bot_id == bot_id)
    if job_type is not None:
        query = query.where(jobs.c.job_type == job_type.value)
    if status is not None:
        query = query.where(jobs.c.status == status.value)
    return list(conn.execute(query.order_by(jobs.c.id.desc()).limit(limit).offset(offset)).all())


def job_events(conn: Executor, job_id: str) -> list[Row[Any]]:
    """The job's transitions, oldest first (ids are time-ordered and break ties in time)."""
    return list(conn.execute(sa.select(events).where(events.c.job_id == job_id)
                             .order_by(events.c.created_at, events.c.id)).all())
