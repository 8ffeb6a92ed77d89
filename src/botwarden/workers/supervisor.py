"""The supervisor: heals what died.

- A held job whose lease ran out lost its worker: it is requeued with backoff, or
  dead-lettered (FAILED, MAX_ATTEMPTS_EXCEEDED) once its attempts are spent. A lost runner
  is restarted for the same bot unless the bot is killed or its circuit breaker is open.
- A runner blocked by an open breaker is queued again once the breaker half-opens.
- Worker rows that went silent (killed processes) are marked STOPPED."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from botwarden.domain.job_machine import JobReason
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.kill import KillState
from botwarden.store import jobs as job_store
from botwarden.store.breakers import read_breaker, refresh_breakers
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot
from botwarden.workers.policy import breaker_policy
from botwarden.workers.presence import retire_silent_workers
from botwarden.workers.recovery import LostAttempt, plan_after_loss, run_halt_hooks
from botwarden.workers.tasks import LoopContext

bots = cast(sa.Table, Bot.__table__)


def run_supervisor(ctx: LoopContext) -> dict[str, Any]:
    now = ctx.clock()
    outcomes: dict[str, int] = {}
    killed: list[str] = []
    with write_transaction(ctx.engine) as conn:
        for row in job_store.expired_leases(conn, now=now):
            why = f"lease of {row.lease_owner} expired at {row.lease_expires_at.isoformat()}"
            plan = plan_after_loss(
                conn, LostAttempt(row.id, JobType(row.job_type), row.bot_id, row.attempts,
                                  row.max_attempts, row.started_at or now, row.trace_id),
                reason_code=JobReason.LEASE_EXPIRED, why=why, now=now, settings=ctx.settings,
                draw=random.random(), actor=ctx.actor)
            if job_store.transition_observed(
                conn, row, plan.target, actor=ctx.actor, now=now, reason_code=plan.reason_code,
                reason=plan.reason, run_after=plan.run_after,
                where=[job_store.jobs.c.lease_expires_at < now],
            ):
                key = {JobStatus.QUEUED: "requeued", JobStatus.FAILED: "dead_lettered"}.get(
                    plan.target, plan.target.value.lower())
                outcomes[key] = outcomes.get(key, 0) + 1
                if plan.killed_bot_id:
                    killed.append(plan.killed_bot_id)
        outcomes["restarted"] = _resume_blocked_runners(conn, ctx)
        outcomes["breakers_changed"] = refresh_breakers(conn, now=now,
                                                        policy=breaker_policy(ctx.settings))
        outcomes["workers_retired"] = retire_silent_workers(
            conn, now=now, silent_for=timedelta(seconds=ctx.settings.job_lease_seconds))
    run_halt_hooks(ctx.engine, killed, None)
    return {**outcomes, "bots_killed": len(killed), "killed_bot_ids": killed}


def _resume_blocked_runners(conn: Connection, ctx: LoopContext) -> int:
    """Runners blocked by an open breaker: queued again once it half-opens (one trial
    restart; another failure opens it again), cancelled if their bot was killed."""
    now = ctx.clock()
    policy = breaker_policy(ctx.settings)
    restarted = 0
    for row in job_store.blocked_jobs(conn, reason_code=JobReason.CIRCUIT_OPEN.value):
        kill_state = conn.execute(sa.select(bots.c.kill_state)
                                  .where(bots.c.id == row.bot_id)).scalar_one()
        if kill_state != KillState.NONE.value:
            job_store.transition_observed(
                conn, row, JobStatus.CANCELED, actor=ctx.actor, now=now,
                reason_code=JobReason.BOT_KILLED.value, reason=f"bot is {kill_state}")
        elif read_breaker(conn, row.bot_id).allows_restart(now, policy):
            restarted += job_store.transition_observed(
                conn, row, JobStatus.QUEUED, actor=ctx.actor, now=now,
                reason_code=JobReason.CIRCUIT_HALF_OPEN.value,
                reason="circuit breaker half-open: one trial restart")
    return restarted
