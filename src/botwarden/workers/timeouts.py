"""The timeout worker: a held job whose handler has not beaten within its type's timeout
(domain.md: BACKTEST 30 min, ..., RUNNER 30 s) ends TIMEOUT with HEARTBEAT_TIMEOUT.

It looks only at jobs whose lease is still valid, that is whose worker is alive and
renewing it while the handler has hung. A job whose lease lapsed lost its worker; that one
belongs to the supervisor, which may run it again. A runner that times out also counts as
a failure on its bot's circuit breaker."""

from __future__ import annotations

from typing import Any

from botwarden.domain.job_machine import LONG_LIVED, JobReason, is_heartbeat_stale
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.workers.policy import heartbeat_timeouts
from botwarden.workers.recovery import record_runner_failure, run_halt_hooks
from botwarden.workers.tasks import LoopContext


def run_timeout_worker(ctx: LoopContext) -> dict[str, Any]:
    now = ctx.clock()
    timeouts = heartbeat_timeouts(ctx.settings)
    timed_out: list[str] = []
    killed: list[str] = []
    with write_transaction(ctx.engine) as conn:
        for row in job_store.quiet_jobs(conn, now=now, quiet_for=min(timeouts.values())):
            job_type = JobType(row.job_type)
            if not is_heartbeat_stale(job_type, row.last_heartbeat_at, now, timeouts):
                continue
            limit = timeouts[job_type]
            reason = f"no heartbeat for {limit.total_seconds():g} s (last {row.last_heartbeat_at})"
            moved = job_store.transition_observed(
                conn, row, JobStatus.TIMEOUT, actor=ctx.actor, now=now,
                reason_code=JobReason.HEARTBEAT_TIMEOUT.value, reason=reason,
                where=[job_store.jobs.c.last_heartbeat_at < now - limit])
            if not moved:
                continue
            timed_out.append(row.id)
            if job_type in LONG_LIVED and row.bot_id is not None:
                failure = record_runner_failure(conn, row.bot_id, now=now, settings=ctx.settings,
                                                actor=ctx.actor, reason=reason,
                                                trace_id=row.trace_id)
                if failure.killed_now:
                    killed.append(row.bot_id)
    run_halt_hooks(ctx.engine, killed, None)
    return {"timed_out": len(timed_out), "job_ids": timed_out, "bots_killed": len(killed),
            "killed_bot_ids": killed}
