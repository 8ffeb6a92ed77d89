"""Runner control: start, restart, stop and list the RUNNER jobs of bots.

A runner is a RUNNER job; the worker that claims it runs the trading loop (botwarden.trading)
and reads what to run from the job's payload, fixed here:
`{bot_id, mode, broker, provider, dataset, symbol, timeframe, speed, start}`.

- Start and restart gather the facts of the safe-start checks from the store
  (runner_facts.py) and refuse with the first failing check (domain/safe_start.py).
- At most one unfinished runner per bot, enforced by a partial unique index on bot_jobs
  (models/jobs.py) as well as checked here: a second start answers RUNNER_ALREADY_ACTIVE.
  Each operation locks the bot's row first, so two operations on one bot queue up instead
  of racing (SQLite's write lock does the same).
- Restart is graceful and keeps the state: the strategy state lives in runner_states keyed
  by the bot, so a restart cancels the old job (whose worker stops at its next heartbeat)
  and queues a new one, in one transaction. The new payload is built from the same facts as
  a start, so it equals the old one unless the bot or the settings changed meanwhile.
- Stop cancels the runner job; its worker sees the lease gone at the next heartbeat and
  the handler's `should_stop` turns true.

The circuit breaker: start and restart record nothing on it. A refusal is not a failure of
the runner (it never ran), and a replaced or stopped runner ends CANCELED, not failed. The
genuine failures of a start or restart are the runner's attempts that are lost once it runs
(its handler raised, its lease expired, its heartbeat went stale): workers/recovery.py
records each of those on the bot's breaker, for any RUNNER job, whoever queued it. Start
and restart read the breaker and refuse with CIRCUIT_OPEN while it is open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from botwarden.clock import as_utc
from botwarden.config import Settings
from botwarden.data.bar_store import BarStore
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import TERMINAL, JobStatus, JobType
from botwarden.domain.safe_start import RunnerMode, StartVerdict, check_start, mode_for_stage
from botwarden.domain.stages import Stage
from botwarden.services.runner_facts import gather_facts
from botwarden.store import jobs as job_store
from botwarden.store.models import Bot, BotJob, Position, RunnerState

ACTIVE_STATUSES: tuple[str, ...] = tuple(s.value for s in JobStatus if s not in TERMINAL)
_TERMINAL = tuple(s.value for s in TERMINAL)
_ACTIVE_INDEX = "uq_bot_jobs_one_active_runner"


@dataclass(frozen=True, slots=True)
class RunnerLaunch:
    job_id: str
    bot_id: str
    mode: RunnerMode
    payload: dict[str, Any]
    replaced_job_id: str | None = None  # restart: the job it cancelled


def runner_payload(bot: Bot, mode: RunnerMode, *, provider: str, dataset: str | None,
                   settings: Settings) -> dict[str, Any]:
    """What the runner reads from its job. `start` None: the runner resumes from its saved
    state, or picks where to begin."""
    return {
        "bot_id": bot.id,
        "mode": mode.value,
        "broker": mode.broker,
        "provider": provider,
        "dataset": dataset,
        "symbol": bot.symbol,
        "timeframe": bot.timeframe,
        "speed": settings.runner_replay_speed if provider == "replay" else None,
        "start": None,
    }


def preflight(session: Session, bot: Bot, *, settings: Settings, store: BarStore,
              now: datetime) -> tuple[StartVerdict, dict[str, Any] | None]:
    """The safe-start verdict for `bot` now, and the payload its runner would get."""
    gathered = gather_facts(session, bot, settings=settings, store=store, now=now)
    verdict = check_start(gathered.facts)
    if not verdict.allowed:
        return verdict, None
    mode = mode_for_stage(Stage(bot.stage))
    return verdict, runner_payload(bot, mode, provider=gathered.facts.provider,
                                   dataset=gathered.dataset, settings=settings)


def start_runner(session: Session, bot: Bot, *, settings: Settings, store: BarStore,
                 actor: str, now: datetime, trace_id: str | None = None) -> RunnerLaunch:
    bot = _lock(session, bot)
    payload = _checked_payload(session, bot, settings=settings, store=store, now=now)
    active = active_runner(session, bot.id)
    if active is not None:
        raise _already_active(bot.id, active.id)
    job_id = _create(session, bot, payload, actor=actor, now=now, trace_id=trace_id)
    return RunnerLaunch(job_id, bot.id, RunnerMode(payload["mode"]), payload)


def restart_runner(session: Session, bot: Bot, *, settings: Settings, store: BarStore,
                   actor: str, now: datetime, trace_id: str | None = None) -> RunnerLaunch:
    """Cancel the bot's runner (if one is unfinished) and queue its successor, after the
    same checks as a start. With no runner to replace it starts one."""
    bot = _lock(session, bot)
    payload = _checked_payload(session, bot, settings=settings, store=store, now=now)
    replaced = None
    active = active_runner(session, bot.id)
    if active is not None and _cancel(session, active.id, bot, actor=actor, now=now,
                                      reason="restarted: a new runner job takes over"):
        replaced = active.id
    job_id = _create(session, bot, payload, actor=actor, now=now, trace_id=trace_id)
    return RunnerLaunch(job_id, bot.id, RunnerMode(payload["mode"]), payload, replaced)


def stop_runner(session: Session, bot: Bot, *, actor: str, now: datetime,
                reason: str = "stopped on request") -> Row[Any]:
    """Cancel the bot's unfinished runner; answers the cancelled job."""
    bot = _lock(session, bot)
    active = active_runner(session, bot.id)
    if active is None or not _cancel(session, active.id, bot, actor=actor, now=now,
                                     reason=reason):
        raise DomainError("RUNNER_NOT_ACTIVE", "the bot has no unfinished runner to stop",
                          "Nothing to stop; GET /api/runners?include_finished=true shows how "
                          "its last runner ended.", status=409)
    row = job_store.get_job(session, active.id)
    assert row is not None
    return row


def active_runner(session: Session, bot_id: str) -> Row[Any] | None:
    return session.execute(
        sa.select(job_store.jobs).where(job_store.jobs.c.bot_id == bot_id,
                                        job_store.jobs.c.job_type == JobType.RUNNER.value,
                                        job_store.jobs.c.status.in_(ACTIVE_STATUSES))
    ).first()


def _lock(session: Session, bot: Bot) -> Bot:
    """The bot's row, locked for the transaction and read afresh (PostgreSQL; on SQLite the
    caller's write transaction already excludes every other writer)."""
    return session.execute(sa.select(Bot).where(Bot.id == bot.id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one()


def _checked_payload(session: Session, bot: Bot, *, settings: Settings, store: BarStore,
                     now: datetime) -> dict[str, Any]:
    verdict, payload = preflight(session, bot, settings=settings, store=store, now=now)
    verdict.raise_if_refused()
    assert payload is not None
    return payload


def _already_active(bot_id: str, job_id: str | None) -> DomainError:
    which = f" (job {job_id})" if job_id else ""
    return DomainError("RUNNER_ALREADY_ACTIVE", f"the bot already has an unfinished runner{which}",
                       "Use restart (POST /api/runners/restart) to replace it, or stop it first "
                       "(POST /api/runners/stop).", status=409,
                       details={"job_id": job_id} if job_id else None)


def _create(session: Session, bot: Bot, payload: dict[str, Any], *, actor: str, now: datetime,
            trace_id: str | None) -> str:
    try:
        with session.begin_nested():  # a lost race leaves the caller's transaction usable
            return job_store.create_job(session, account_id=bot.account_id,
                                        job_type=JobType.RUNNER, actor=actor, now=now,
                                        payload=payload, bot_id=bot.id, trace_id=trace_id)
    except IntegrityError as exc:
        message = str(exc.orig)
        if _ACTIVE_INDEX in message or "bot_jobs.bot_id" in message:
            raise _already_active(bot.id, None) from exc
        raise


def _cancel(session: Session, job_id: str, bot: Bot, *, actor: str, now: datetime,
            reason: str) -> bool:
    """Cancel one job; False when it finished on its own in the meantime."""
    try:
        job_store.cancel_job(session, job_id, account_id=bot.account_id, actor=actor, now=now,
                             reason=reason)
    except DomainError as exc:
        if exc.code != "JOB_TERMINAL":
            raise
        return False
    return True


# --- the listing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    qty: int
    avg_price: Decimal | None
    realized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class RunnerView:
    job_id: str
    bot_id: str
    bot_name: str
    stage: str
    mode: str | None
    broker: str | None
    provider: str | None
    status: str
    status_reason_code: str | None
    active: bool
    attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    last_heartbeat_at: datetime | None
    heartbeat_age_seconds: float | None
    last_bar_time: datetime | None
    positions: tuple[PositionView, ...]


def list_runners(session: Session, account_id: str, *, now: datetime,
                 include_finished: bool = False, bot_id: str | None = None) -> list[RunnerView]:
    """The account's unfinished runners; with `include_finished`, also each bot's last
    finished one. Ordered by bot name, a bot's unfinished runner first."""
    jobs = BotJob
    mine = [jobs.account_id == account_id, jobs.job_type == JobType.RUNNER.value]
    if bot_id is not None:
        mine.append(jobs.bot_id == bot_id)
    wanted: sa.ColumnElement[bool] = jobs.status.in_(ACTIVE_STATUSES)
    if include_finished:
        rank = sa.func.row_number().over(
            partition_by=jobs.bot_id, order_by=(jobs.completed_at.desc(), jobs.id.desc()))
        ranked = (sa.select(jobs.id, rank.label("rank"))
                  .where(*mine, jobs.status.in_(_TERMINAL)).subquery())
        last_ended = sa.select(ranked.c.id).where(ranked.c.rank == 1)
        wanted = sa.or_(wanted, jobs.id.in_(last_ended))
    rows = session.execute(
        sa.select(jobs, Bot.name.label("bot_name"), Bot.stage.label("bot_stage"))
        .join(Bot, Bot.id == jobs.bot_id).where(*mine, wanted)
    ).all()
    bot_ids = list({row.BotJob.bot_id for row in rows})
    positions: dict[str, list[PositionView]] = {}
    bars: dict[str, datetime | None] = {}
    if bot_ids:
        for p in session.scalars(sa.select(Position).where(Position.bot_id.in_(bot_ids))
                                 .order_by(Position.symbol)):
            positions.setdefault(p.bot_id, []).append(
                PositionView(p.symbol, p.qty, p.avg_price, p.realized_pnl))
        bars.update(session.execute(
            sa.select(RunnerState.bot_id, RunnerState.last_bar_time)
            .where(RunnerState.bot_id.in_(bot_ids))).tuples().all())
    views = [_view(row.BotJob, row.bot_name, row.bot_stage, now, positions, bars)
             for row in rows]
    return sorted(views, key=lambda v: (v.bot_name, v.bot_id, not v.active,
                                        -v.created_at.timestamp()))


def _view(job: BotJob, bot_name: str, stage: str, now: datetime,
          positions: dict[str, list[PositionView]], bars: dict[str, datetime | None]
          ) -> RunnerView:
    payload = job.payload or {}
    beat = as_utc(job.last_heartbeat_at) if job.last_heartbeat_at else None
    assert job.bot_id is not None  # RUNNER jobs always belong to a bot (checked by the DB)
    last_bar = bars.get(job.bot_id)
    return RunnerView(
        job_id=job.id, bot_id=job.bot_id, bot_name=bot_name, stage=stage,
        mode=payload.get("mode"), broker=payload.get("broker"),
        provider=payload.get("provider"), status=job.status,
        status_reason_code=job.status_reason_code, active=job.status in ACTIVE_STATUSES,
        attempts=job.attempts, created_at=as_utc(job.created_at),
        started_at=as_utc(job.started_at) if job.started_at else None,
        completed_at=as_utc(job.completed_at) if job.completed_at else None,
        last_heartbeat_at=beat,
        heartbeat_age_seconds=round((now - beat).total_seconds(), 3) if beat else None,
        last_bar_time=as_utc(last_bar) if last_bar else None,
        positions=tuple(positions.get(job.bot_id, ())),
    )
