"""Runners: start, restart and stop a bot's runner (a RUNNER job), and list them.

Start and restart run the action policy (the guard: role, ownership, kill switch, kill
state, stage, live-trading flag) and then every safe-start check in order
(services/runners.py), refusing with the first that fails: its code, status and fix."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, guard
from botwarden.clock import utcnow
from botwarden.data.bar_store import BarStore
from botwarden.policy import Action
from botwarden.services import runners as runner_service

router = APIRouter(prefix="/api/runners", tags=["runners"])


class RunnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bot_id: str = Field(min_length=1, max_length=64)


class StopIn(RunnerIn):
    reason: str = Field(default="stopped on request", max_length=1000)


class RunnerPayload(BaseModel):
    """What the runner reads from its job."""

    bot_id: str
    mode: str = Field(description="PAPER, SHADOW, CANARY or LIVE (from the bot's stage)")
    broker: str = Field(description="paper, shadow or tradovate")
    provider: str = Field(description="the data provider streamed from, e.g. replay")
    dataset: str | None = Field(description="the bar store dataset a replay reads")
    symbol: str
    timeframe: str
    speed: float | None = Field(description="replay speed: 60 plays one 1-minute bar a second")
    start: datetime | None = Field(description="where to begin; null: the runner resumes")


class LaunchOut(BaseModel):
    job_id: str
    bot_id: str
    status: str
    mode: str
    broker: str
    payload: RunnerPayload
    replaced_job_id: str | None = Field(
        default=None, description="restart: the runner job it cancelled")


class StopOut(BaseModel):
    job_id: str
    bot_id: str
    status: str
    status_reason_code: str | None
    status_reason: str | None
    completed_at: datetime | None


class PositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    symbol: str
    qty: int
    avg_price: Decimal | None
    realized_pnl: Decimal


class RunnerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
    positions: list[PositionOut]


def _launch_out(launch: runner_service.RunnerLaunch) -> LaunchOut:
    payload: dict[str, Any] = launch.payload
    return LaunchOut(job_id=launch.job_id, bot_id=launch.bot_id, status="QUEUED",
                     mode=launch.mode.value, broker=launch.mode.broker,
                     payload=RunnerPayload(**payload), replaced_job_id=launch.replaced_job_id)


def _store(request: Request) -> BarStore:
    return BarStore.from_settings(request.app.state.settings)


@router.post("/start", status_code=202, response_model=LaunchOut)
def start(body: RunnerIn, request: Request,
          ctx: Guarded = Depends(guard(Action.RUNNER_START, bot_from="body"))) -> LaunchOut:
    """Queue the bot's runner after the safe-start checks. Refusals: 409 BOT_KILLED,
    STAGE_NOT_ELIGIBLE, LIVE_TRADING_DISABLED, AUTONOMY_BLOCKED, CIRCUIT_OPEN,
    RUNNER_ALREADY_ACTIVE; 424 INTEGRATION_KEY_MISSING, DATA_UNAVAILABLE."""
    assert ctx.bot is not None
    launch = runner_service.start_runner(
        ctx.session, ctx.bot, settings=request.app.state.settings, store=_store(request),
        actor=ctx.actor_label, now=utcnow(), trace_id=ctx.trace_id)
    ctx.commit()
    return _launch_out(launch)


@router.post("/restart", status_code=202, response_model=LaunchOut)
def restart(body: RunnerIn, request: Request,
            ctx: Guarded = Depends(guard(Action.RUNNER_RESTART, bot_from="body"))) -> LaunchOut:
    """Graceful, state preserved: the same checks as start, then the running job is
    cancelled (its worker stops at the next heartbeat) and a new one queued, which resumes
    from the bot's saved runner state."""
    assert ctx.bot is not None
    launch = runner_service.restart_runner(
        ctx.session, ctx.bot, settings=request.app.state.settings, store=_store(request),
        actor=ctx.actor_label, now=utcnow(), trace_id=ctx.trace_id)
    ctx.commit()
    return _launch_out(launch)


@router.post("/stop", response_model=StopOut)
def stop(body: StopIn, ctx: Guarded = Depends(guard(Action.RUNNER_STOP, bot_from="body"))
         ) -> StopOut:
    """Cancel the bot's runner; its worker stops it at the next heartbeat. 409
    RUNNER_NOT_ACTIVE when there is none."""
    assert ctx.bot is not None
    row = runner_service.stop_runner(ctx.session, ctx.bot, actor=ctx.actor_label,
                                     now=utcnow(), reason=body.reason)
    ctx.commit()
    return StopOut(job_id=row.id, bot_id=ctx.bot.id, status=row.status,
                   status_reason_code=row.status_reason_code, status_reason=row.status_reason,
                   completed_at=row.completed_at)


@router.get("", response_model=list[RunnerOut])
def list_runners(
    include_finished: bool = Query(False, description="also each bot's last finished runner"),
    bot_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[RunnerOut]:
    """The account's runners: job, status, last heartbeat and its age, position, last bar."""
    views = runner_service.list_runners(session, principal.account_id, now=utcnow(),
                                        include_finished=include_finished, bot_id=bot_id)
    return [RunnerOut.model_validate(v) for v in views]
