"""`POST /api/action-security`: the action policy as a dry run, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, bot_facts, guard
from botwarden.clock import utcnow
from botwarden.policy import AccountFacts, Action, decide
from botwarden.store.models import AuditLog, Bot

router = APIRouter(tags=["policy"])


class DryRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=64)
    bot_id: str | None = Field(default=None, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class DryRunOut(BaseModel):
    allowed: bool
    action: str
    reason_code: str
    message: str
    fix: str
    checks: list[str]
    trace_id: str


@router.post("/api/action-security", response_model=DryRunOut)
def dry_run(body: DryRunRequest,
            ctx: Guarded = Depends(guard(Action.POLICY_DRY_RUN))) -> DryRunOut:
    """Answer what the policy would decide for `action` on `bot_id`, without doing it.
    Unknown actions, unknown bots and missing step-ups deny with their reason code."""
    assert ctx.principal is not None and ctx.account is not None
    bot = ctx.session.get(Bot, body.bot_id) if body.bot_id else None
    if bot is not None and bot.account_id != ctx.principal.account_id:
        bot = None
    decision = decide(body.action, ctx.principal.actor,
                      account=AccountFacts(ctx.account.id, ctx.account.kill_switch_engaged),
                      bot=bot_facts(bot) if bot else None, params=body.params, now=utcnow())
    ctx.audit.detail = {"dry_run_of": body.action, "allowed": decision.allowed,
                        "reason_code": decision.reason_code}
    if body.bot_id:
        ctx.audit.target_type, ctx.audit.target_id = "bot", body.bot_id
    ctx.commit()
    return DryRunOut(allowed=decision.allowed, action=body.action,
                     reason_code=decision.reason_code, message=decision.message, fix=decision.fix,
                     checks=list(decision.checks), trace_id=ctx.trace_id)


class AuditOut(BaseModel):
    id: str
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    decision: str
    reason_code: str | None
    detail: dict[str, Any]
    trace_id: str | None
    created_at: datetime


@router.get("/api/audit-log", response_model=list[AuditOut])
def audit_log(
    action: str | None = None,
    decision: str | None = Query(None, pattern="^(ALLOW|DENY)$"),
    target_id: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[AuditOut]:
    query = sa.select(AuditLog).where(AuditLog.account_id == principal.account_id)
    if action:
        query = query.where(AuditLog.action == action)
    if decision:
        query = query.where(AuditLog.decision == decision)
    if target_id:
        query = query.where(AuditLog.target_id == target_id)
    rows = session.scalars(query.order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
                           .limit(limit)).all()
    return [AuditOut(id=r.id, actor=r.actor, action=r.action, target_type=r.target_type,
                     target_id=r.target_id, decision=r.decision, reason_code=r.reason_code,
                     detail=r.detail, trace_id=r.trace_id, created_at=r.created_at) for r in rows]
