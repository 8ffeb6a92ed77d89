"""Stages and promotion: PATCH stage, promotion-evaluation, live-readiness, graduate,
approvals, promote-live and retire. Rules live in domain/ and services/; these routes wire
the guard, the clock and the settings to them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session, get_settings_dep
from botwarden.api.guard import Guarded, guard
from botwarden.api.routers.bots import load_bot
from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.gates import HumanApproval
from botwarden.domain.stage_machine import Route
from botwarden.domain.stages import Stage
from botwarden.policy import Action
from botwarden.services import approvals
from botwarden.services import promotion as promotion_service
from botwarden.services.kill import run_halt_hooks
from botwarden.services.promotion import StageChange
from botwarden.store.models import Account

router = APIRouter(prefix="/api/bots/{bot_id}", tags=["stages"])


class StageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: Stage


class PromoteLiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approval_token: str = Field(min_length=1, max_length=2000)


class StageChangeOut(BaseModel):
    bot_id: str
    from_stage: str
    stage: str
    transition: str
    stage_changed_at: datetime
    is_trading_enabled: bool
    canceled_jobs: list[str] = Field(default_factory=list)
    halt: list[dict[str, Any]] = Field(default_factory=list)


class GateOut(BaseModel):
    id: str
    required: bool | int | float
    actual: bool | int | float | None
    passed: bool
    unit: str
    detail: str = ""


class EvaluationOut(BaseModel):
    bot_id: str
    stage: str
    next_stage: str | None
    eligible: bool
    gate_profile: str
    evidence: str
    gates: list[GateOut]


class BlockerOut(BaseModel):
    code: str
    message: str
    fix: str


class ReadinessOut(BaseModel):
    bot_id: str
    stage: str
    ready: bool
    blockers: list[BlockerOut]


class ApprovalOut(BaseModel):
    approval_id: str
    approval_token: str
    bot_id: str
    expires_at: datetime


def _step_up_active(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now


def _finish(ctx: Guarded, change: StageChange) -> StageChangeOut:
    """Commit the change with its audit row, then flatten if runners were stopped (the
    market is acted on only once the change is on record, as the kill engine does)."""
    assert ctx.bot is not None
    t = change.transition
    ctx.audit.detail = {"from_stage": t.from_stage.value, "to_stage": t.to_stage.value,
                        "transition": t.kind.value, "canceled_jobs": list(change.canceled_jobs)}
    ctx.commit()
    halt = run_halt_hooks(ctx.session, ctx.bot, ctx.trace_id) \
        if t.leaves_the_runner_venue else []
    return StageChangeOut(bot_id=ctx.bot.id, from_stage=t.from_stage.value,
                          stage=t.to_stage.value, transition=t.kind.value,
                          stage_changed_at=change.changed_at,
                          is_trading_enabled=ctx.bot.is_trading_enabled,
                          canceled_jobs=list(change.canceled_jobs), halt=halt)


@router.patch("/stage", response_model=StageChangeOut)
def change_stage(bot_id: str, body: StageRequest,
                 ctx: Guarded = Depends(guard(Action.STAGE_CHANGE))) -> StageChangeOut:
    """One step up when the gates pass (409 GATES_NOT_MET lists the failing ones); any step
    down. LIVE only through promote-live, RETIRED only through retire."""
    assert ctx.bot is not None and ctx.account is not None
    change = promotion_service.change_stage(ctx.session, ctx.bot, ctx.account,
                                            Route.STAGE_PATCH, target=body.stage, now=utcnow(),
                                            actor=ctx.actor_label)
    return _finish(ctx, change)


@router.post("/graduate", response_model=StageChangeOut)
def graduate(bot_id: str, ctx: Guarded = Depends(guard(Action.GRADUATE))) -> StageChangeOut:
    """One stage up if the gates pass; never into LIVE."""
    assert ctx.bot is not None and ctx.account is not None
    change = promotion_service.change_stage(ctx.session, ctx.bot, ctx.account, Route.GRADUATE,
                                            now=utcnow(), actor=ctx.actor_label)
    return _finish(ctx, change)


@router.post("/approvals", response_model=ApprovalOut, status_code=201)
def issue_approval(bot_id: str, ctx: Guarded = Depends(guard(Action.APPROVAL_ISSUE)),
                   settings: Settings = Depends(get_settings_dep)) -> ApprovalOut:
    """A signed CANARY -> LIVE approval, valid once, for `approval_ttl_minutes` (5)."""
    assert ctx.bot is not None and ctx.principal is not None
    issued = approvals.issue_approval(
        ctx.session, ctx.bot, ctx.principal.user_id,
        secret=settings.secret_key.get_secret_value(), now=utcnow(),
        ttl=timedelta(minutes=settings.approval_ttl_minutes))
    ctx.audit.detail = {"approval_id": issued.approval_id}
    ctx.commit()
    return ApprovalOut(approval_id=issued.approval_id, approval_token=issued.token,
                       bot_id=ctx.bot.id, expires_at=issued.expires_at)


@router.post("/promote-live", response_model=StageChangeOut)
def promote_live(bot_id: str, body: PromoteLiveRequest,
                 ctx: Guarded = Depends(guard(Action.PROMOTE_LIVE)),
                 settings: Settings = Depends(get_settings_dep)) -> StageChangeOut:
    """CANARY -> LIVE: every gate, a step-up, and a valid approval token, consumed in the
    same transaction as the stage change."""
    assert ctx.bot is not None and ctx.account is not None and ctx.principal is not None
    now = utcnow()
    approval = approvals.check_approval(ctx.session, ctx.bot, body.approval_token,
                                        secret=settings.secret_key.get_secret_value(), now=now)
    human = HumanApproval(_step_up_active(ctx.principal.step_up_until, now), True)
    change = promotion_service.change_stage(ctx.session, ctx.bot, ctx.account,
                                            Route.PROMOTE_LIVE, now=now, actor=ctx.actor_label,
                                            approval=human)
    approvals.consume_approval(ctx.session, approval, now=now)
    ctx.audit.detail = {"approval_id": approval.id}
    return _finish(ctx, change)


@router.post("/retire", response_model=StageChangeOut)
def retire(bot_id: str, ctx: Guarded = Depends(guard(Action.RETIRE))) -> StageChangeOut:
    """Stop the bot's runners, stage RETIRED, live trading off; then flatten."""
    assert ctx.bot is not None and ctx.account is not None
    change = promotion_service.change_stage(ctx.session, ctx.bot, ctx.account, Route.RETIRE,
                                            now=utcnow(), actor=ctx.actor_label)
    return _finish(ctx, change)


@router.get("/promotion-evaluation", response_model=EvaluationOut)
def promotion_evaluation(bot_id: str, principal: Principal = Depends(current_principal),
                         session: Session = Depends(get_session)) -> EvaluationOut:
    """Every gate for leaving the current stage, with required, actual, passed and unit."""
    bot = load_bot(session, principal, bot_id)
    account = session.get(Account, principal.account_id)
    assert account is not None
    now = utcnow()
    human = None
    if bot.stage == Stage.CANARY.value:
        # What is not on record reads as no evidence (None), like every other gate.
        human = HumanApproval(_step_up_active(principal.step_up_until, now) or None,
                              approvals.has_open_approval(session, bot.id, now=now) or None)
    evaluation, evidence = promotion_service.evaluate(session, bot, account, now=now,
                                                      approval=human)
    return EvaluationOut(
        bot_id=bot.id, stage=evaluation.stage.value,
        next_stage=evaluation.next_stage.value if evaluation.next_stage else None,
        eligible=evaluation.eligible, gate_profile=evaluation.profile, evidence=evidence.source,
        gates=[GateOut(**g.as_dict()) for g in evaluation.gates])


@router.get("/live-readiness", response_model=ReadinessOut)
def live_readiness(bot_id: str, principal: Principal = Depends(current_principal),
                   session: Session = Depends(get_session),
                   settings: Settings = Depends(get_settings_dep)) -> ReadinessOut:
    bot = load_bot(session, principal, bot_id)
    account = session.get(Account, principal.account_id)
    assert account is not None
    broker = bool(settings.tradovate_username and settings.tradovate_password
                  and settings.tradovate_password.get_secret_value())
    blockers = promotion_service.live_readiness(session, bot, account, now=utcnow(),
                                                totp_enabled=principal.totp_enabled,
                                                broker_configured=broker)
    return ReadinessOut(bot_id=bot.id, stage=bot.stage, ready=not blockers,
                        blockers=[BlockerOut(code=b.code, message=b.message, fix=b.fix)
                                  for b in blockers])
