"""Reconcile a bot on demand: for POST /api/bots/{id}/reconcile, the RECONCILE job, and the
`reconcile_degraded` loop that reconciles every bot whose runner is DEGRADED.

While the bot's runner is alive the reconcile goes through the same store and broker; fills
are serialised per bot (order_store.check_fence locks the bot's runner state row), so the
runner and a reconcile never apply one fill twice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobStatus, JobType
from botwarden.domain.risk_limits import parse_risk_limits
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Bot, BotJob, RiskConfig
from botwarden.trading.broker_factory import MODE_BROKERS, make_broker
from botwarden.trading.order_manager import OrderManager
from botwarden.trading.reconcile_service import reconcile
from botwarden.workers.context import JobContext
from botwarden.workers.registry import register_handler
from botwarden.workers.tasks import LoopContext, register_task

jobs = cast(sa.Table, BotJob.__table__)
bots = cast(sa.Table, Bot.__table__)
RECONCILE_EVERY = timedelta(minutes=2)  # at most one reconcile per DEGRADED bot this often


def reconcile_bot(engine: Engine, settings: Settings, bot_id: str, *, actor: str,
                  trace_id: str | None = None) -> dict[str, Any]:
    with engine.connect() as conn:
        bot = conn.execute(sa.select(bots).where(bots.c.id == bot_id)).first()
        config = conn.execute(sa.select(RiskConfig.__table__.c.config).where(
            RiskConfig.__table__.c.bot_id == bot_id)).scalar_one_or_none()
    if bot is None:
        raise DomainError("NOT_FOUND", "no such bot", "Check the bot id.", status=404)
    broker_name = MODE_BROKERS.get(bot.stage)
    if broker_name is None:
        raise DomainError("STAGE_NOT_ELIGIBLE", f"a {bot.stage} bot has no broker to reconcile "
                          "with", "Reconcile applies to PAPER, SHADOW, CANARY and LIVE bots.")
    try:
        limits = parse_risk_limits(config)
    except DomainError:
        limits = None  # reconcile sends nothing new; it only settles what exists
    manager = OrderManager(engine, bot_id=bot_id, job_id=None,
                           broker=make_broker(engine, settings, bot_id, broker_name),
                           mode=bot.stage, source_type=bot.stage, limits=limits)
    outcome = reconcile(engine, manager, bot.symbol, actor=actor, trace_id=trace_id)
    return {"bot_id": bot_id, "broker": broker_name, **outcome.as_json()}


def run_reconcile_job(ctx: JobContext) -> dict[str, Any]:
    bot_id = ctx.bot_id or str(ctx.payload["bot_id"])
    return reconcile_bot(ctx.engine, ctx.settings, bot_id, actor=f"reconcile:{ctx.job_id}",
                         trace_id=ctx.job.trace_id)


def reconcile_degraded(ctx: LoopContext) -> dict[str, Any]:
    """Queue a RECONCILE job for every bot whose runner is DEGRADED, unless one ran lately."""
    now = ctx.clock()
    queued = 0
    with write_transaction(ctx.engine) as conn:
        degraded = conn.execute(sa.select(jobs.c.bot_id, jobs.c.account_id).where(
            jobs.c.job_type == JobType.RUNNER.value,
            jobs.c.status == JobStatus.DEGRADED.value)).all()
        for row in degraded:
            recent = conn.execute(sa.select(sa.func.count()).select_from(jobs).where(
                jobs.c.bot_id == row.bot_id, jobs.c.job_type == JobType.RECONCILE.value,
                jobs.c.created_at > now - RECONCILE_EVERY)).scalar_one()
            if recent:
                continue
            job_store.create_job(conn, account_id=row.account_id,
                                 job_type=JobType.RECONCILE, actor=ctx.actor, now=now,
                                 bot_id=row.bot_id, payload={"bot_id": row.bot_id,
                                                             "why": "runner DEGRADED"})
            queued += 1
    return {"degraded_runners": len(degraded), "reconciles_queued": queued}


register_handler(JobType.RECONCILE, run_reconcile_job)
register_task("reconcile_degraded", reconcile_degraded,
              lambda s: s.supervisor_interval_seconds)
