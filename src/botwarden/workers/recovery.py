"""What becomes of a job whose attempt was lost: shared by the worker (a handler raised),
the supervisor (a lease expired) and the timeout worker (a runner went quiet).

Short jobs retry with backoff until their attempts are spent. Runners are restarted under
their bot's circuit breaker: each loss is a breaker failure; an open breaker blocks the
restart, and when it opens on a CANARY or LIVE bot the bot is killed (CIRCUIT_OPEN) in the
same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from botwarden.config import Settings
from botwarden.domain.circuit_breaker import BreakerState, opened_by
from botwarden.domain.errors import DomainError
from botwarden.domain.job_machine import (
    LONG_LIVED,
    DeadLetter,
    JobReason,
    after_failure,
    backoff_delay,
)
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.kill import KillMode, KillState, TriggerCode
from botwarden.domain.stages import REAL_MONEY_STAGES, Stage
from botwarden.logging import get_logger
from botwarden.services import kill as kill_service
from botwarden.store.breakers import lock_breaker, save_breaker
from botwarden.store.models import Bot
from botwarden.workers.policy import breaker_policy, retry_policy

log = get_logger("botwarden.workers")
bots = cast(sa.Table, Bot.__table__)


@dataclass(frozen=True, slots=True)
class LostAttempt:
    """The facts of the job whose attempt was lost (a claimed job or a job row)."""

    job_id: str
    job_type: JobType
    bot_id: str | None
    attempts: int
    max_attempts: int
    started_at: datetime
    trace_id: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    target: JobStatus
    reason_code: str
    reason: str
    run_after: datetime | None = None
    killed_bot_id: str | None = None  # its halt hooks run once the transaction commits


@dataclass(frozen=True, slots=True)
class RunnerFailure:
    breaker: BreakerState
    recent_failures: int
    bot_killed: bool  # the bot was already killed, or this failure killed it
    killed_now: bool


def record_runner_failure(conn: Connection, bot_id: str, *, now: datetime, settings: Settings,
                          actor: str, reason: str, trace_id: str | None) -> RunnerFailure:
    policy = breaker_policy(settings)
    before = lock_breaker(conn, bot_id, now)
    after = before.record_failure(now, policy)
    save_breaker(conn, bot_id, after, now=now, policy=policy)
    bot = conn.execute(sa.select(bots.c.stage, bots.c.kill_state)
                       .where(bots.c.id == bot_id)).one()
    killed = bot.kill_state != KillState.NONE.value
    opened = opened_by(before, after, now, policy)
    kill_now = opened and not killed and Stage(bot.stage) in REAL_MONEY_STAGES
    if kill_now:
        with Session(bind=conn) as session:
            target = session.get(Bot, bot_id)
            assert target is not None
            try:
                kill_service.kill_bot(
                    session, target, mode=KillMode.HARD, trigger=TriggerCode.CIRCUIT_OPEN,
                    reason=f"circuit breaker opened: {reason}", actor=actor,
                    trace_id=trace_id,
                    metadata={"failures": [t.isoformat() for t in after.failures]})
                session.flush()
            except DomainError as exc:  # killed by another process since the read above
                if exc.code != "ALREADY_KILLED":
                    raise
                killed, kill_now = True, False
    if kill_now:
        log.warning("bot_killed_circuit_open", bot_id=bot_id, stage=bot.stage)
    if opened:
        log.warning("circuit_opened", bot_id=bot_id, failures=len(after.failures))
    return RunnerFailure(after.state(now, policy), len(after.recent(now, policy)),
                         killed or kill_now, kill_now)


def plan_after_loss(
    conn: Connection,
    job: LostAttempt,
    *,
    reason_code: JobReason,
    why: str,
    now: datetime,
    settings: Settings,
    draw: float,
    actor: str,
) -> Plan:
    if job.job_type not in LONG_LIVED:
        outcome = after_failure(attempts=job.attempts, max_attempts=job.max_attempts,
                                attempt_started_at=job.started_at,
                                policy=retry_policy(settings), draw=draw, why=why)
        if isinstance(outcome, DeadLetter):
            return Plan(JobStatus.FAILED, outcome.reason_code, outcome.reason)
        return Plan(JobStatus.QUEUED, reason_code.value, why, run_after=outcome.run_after)
    assert job.bot_id is not None  # RUNNER jobs always belong to a bot (checked by the DB)
    failure = record_runner_failure(conn, job.bot_id, now=now, settings=settings, actor=actor,
                                    reason=why, trace_id=job.trace_id)
    if failure.killed_now:
        return Plan(JobStatus.FAILED, JobReason.CIRCUIT_OPEN.value,
                    f"circuit breaker opened and the bot was killed: {why}",
                    killed_bot_id=job.bot_id)
    if failure.bot_killed:
        # Its runner died before it could flatten: the halt hooks do it (they act on HARD
        # and QUARANTINED bots only, and a second halt of a flat bot changes nothing).
        return Plan(JobStatus.CANCELED, JobReason.BOT_KILLED.value, f"bot is killed: {why}",
                    killed_bot_id=job.bot_id)
    if failure.breaker is BreakerState.OPEN:
        return Plan(JobStatus.BLOCKED, JobReason.CIRCUIT_OPEN.value,
                    f"circuit breaker open, no automatic restart: {why}")
    delay = backoff_delay(failure.recent_failures, retry_policy(settings), draw)
    return Plan(JobStatus.QUEUED, reason_code.value, why, run_after=job.started_at + delay)


def run_halt_hooks(engine: Engine, bot_ids: list[str], trace_id: str | None) -> None:
    """After a commit that killed bots: ask the trading layer to cancel and flatten."""
    for bot_id in bot_ids:
        with Session(engine) as session:
            bot = session.get(Bot, bot_id)
            if bot is not None:
                kill_service.run_halt_hooks(session, bot, trace_id)
                session.commit()
