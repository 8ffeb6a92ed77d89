"""The kill engine's routes: kill, resurrect, kill state and events, the account switch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, guard
from botwarden.api.routers.bots import load_bot
from botwarden.api.schemas.bots import KillEventOut, KillRequest, KillStateOut, ResurrectRequest
from botwarden.clock import utcnow
from botwarden.domain.kill import KillMode, TriggerCode
from botwarden.policy import Action
from botwarden.services import kill as kill_service
from botwarden.store.models import KillEvent

router = APIRouter(tags=["kill"])


def _event_out(e: KillEvent) -> KillEventOut:
    return KillEventOut(id=e.id, bot_id=e.bot_id, event_type=e.event_type, state=e.state,
                        trigger_code=e.trigger_code, reason=e.reason, actor=e.actor,
                        metadata=e.metadata_, trace_id=e.trace_id, created_at=e.created_at)


class KillOut(BaseModel):
    event: KillEventOut
    halt: list[dict[str, Any]]


@router.post("/api/bots/{bot_id}/kill", response_model=KillOut)
def kill(bot_id: str, body: KillRequest, ctx: Guarded = Depends(guard(Action.KILL))) -> KillOut:
    assert ctx.bot is not None
    event = kill_service.kill_bot(ctx.session, ctx.bot, mode=KillMode(body.mode),
                                  trigger=TriggerCode.MANUAL_KILL, reason=body.reason,
                                  actor=ctx.actor_label, trace_id=ctx.trace_id)
    ctx.commit()
    halt = (kill_service.run_halt_hooks(ctx.session, ctx.bot, ctx.trace_id)
            if body.mode == "HARD" else [])
    return KillOut(event=_event_out(event), halt=halt)


@router.post("/api/bots/{bot_id}/resurrect", response_model=KillEventOut)
def resurrect(bot_id: str, body: ResurrectRequest,
              ctx: Guarded = Depends(guard(Action.RESURRECT))) -> KillEventOut:
    assert ctx.bot is not None and ctx.principal is not None
    step_up = ctx.principal.step_up_until is not None and ctx.principal.step_up_until > utcnow()
    event = kill_service.resurrect_bot(ctx.session, ctx.bot, reason=body.reason,
                                       actor=ctx.actor_label, step_up=step_up,
                                       trace_id=ctx.trace_id)
    ctx.commit()
    return _event_out(event)


@router.get("/api/bots/{bot_id}/kill-state", response_model=KillStateOut)
def kill_state(bot_id: str, principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> KillStateOut:
    bot = load_bot(session, principal, bot_id)
    last = session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot.id)
                           .order_by(KillEvent.created_at.desc(), KillEvent.id.desc())
                           .limit(1)).first()
    killed = last is not None and last.event_type == "KILL"
    return KillStateOut(bot_id=bot.id, state=bot.kill_state, trading_state=bot.trading_state,
                        killed_at=last.created_at if killed and last else None,
                        trigger_code=last.trigger_code if killed and last else None,
                        reason=last.reason if killed and last else None)


@router.get("/api/bots/{bot_id}/kill-events", response_model=list[KillEventOut])
def kill_events(bot_id: str, limit: int = Query(100, ge=1, le=1000),
                principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> list[KillEventOut]:
    bot = load_bot(session, principal, bot_id)
    events = session.scalars(sa.select(KillEvent).where(KillEvent.bot_id == bot.id)
                             .order_by(KillEvent.created_at.desc(), KillEvent.id.desc())
                             .limit(limit)).all()
    return [_event_out(e) for e in events]


class KillSwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="account kill switch", max_length=1000)


class KillSwitchOut(BaseModel):
    engaged: bool
    engaged_at: datetime | None
    bots_killed: list[str]
    halt: list[dict[str, Any]] = Field(default_factory=list)


@router.post("/api/kill-switch", response_model=KillSwitchOut)
def engage(body: KillSwitchRequest,
           ctx: Guarded = Depends(guard(Action.KILL_SWITCH))) -> KillSwitchOut:
    assert ctx.account is not None
    killed = kill_service.engage_kill_switch(ctx.session, ctx.account, reason=body.reason,
                                             actor=ctx.actor_label, trace_id=ctx.trace_id)
    ctx.commit()
    halt = [report for bot in killed
            for report in kill_service.run_halt_hooks(ctx.session, bot, ctx.trace_id)]
    return KillSwitchOut(engaged=True, engaged_at=ctx.account.kill_switch_at,
                         bots_killed=[b.id for b in killed], halt=halt)


@router.post("/api/kill-switch/release", response_model=KillSwitchOut)
def release(ctx: Guarded = Depends(guard(Action.KILL_SWITCH_RELEASE))) -> KillSwitchOut:
    assert ctx.account is not None
    kill_service.release_kill_switch(ctx.account)
    ctx.commit()
    return KillSwitchOut(engaged=False, engaged_at=None, bots_killed=[])


@router.get("/api/kill-switch", response_model=KillSwitchOut)
def switch_state(principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> KillSwitchOut:
    from botwarden.store.models import Account

    account = session.get(Account, principal.account_id)
    assert account is not None
    return KillSwitchOut(engaged=account.kill_switch_engaged, engaged_at=account.kill_switch_at,
                         bots_killed=[])
