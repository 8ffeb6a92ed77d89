"""The `halt_sweep` loop: a HARD-killed bot still holding a position or working orders, with
no runner alive to finish its halt (it died, or gave up while the market was closed), is
halted again by the kill engine's hook until the broker shows it flat."""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.domain.jobs import JobType
from botwarden.domain.orders import OPEN
from botwarden.store.models import Bot, BotJob, Order, Position
from botwarden.trading.halt import ACTIVE, HALTING_STATES, RunnerlessHalt
from botwarden.workers.tasks import LoopContext, register_task

jobs = cast(sa.Table, BotJob.__table__)


def halt_sweep(ctx: LoopContext) -> dict[str, Any]:
    exposed = (
        sa.select(Bot.id).where(Bot.kill_state.in_(HALTING_STATES))
        .where(sa.or_(
            sa.exists().where(Position.bot_id == Bot.id, Position.qty != 0),
            sa.exists().where(Order.bot_id == Bot.id,
                              Order.status.in_([s.value for s in OPEN]))))
        .where(~sa.exists().where(jobs.c.bot_id == Bot.id,
                                  jobs.c.job_type == JobType.RUNNER.value,
                                  jobs.c.status.in_(ACTIVE))))
    hook = RunnerlessHalt(ctx.settings)
    results = []
    with Session(ctx.engine) as session:
        for bot_id in session.scalars(exposed).all():
            bot = session.get(Bot, bot_id)
            if bot is not None:
                results.append(hook.halt(session, bot, None))
    flat = sum(1 for r in results if r.get("flat"))
    return {"halted": len(results), "flat": flat, "results": results[:20]}


register_task("halt_sweep", halt_sweep, lambda s: s.supervisor_interval_seconds)
