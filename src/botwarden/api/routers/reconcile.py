"""POST /api/bots/{id}/reconcile: compare the bot's orders and position with its broker's,
fix what can be fixed, quarantine what cannot; answers the report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from botwarden.api.guard import Guarded, guard
from botwarden.domain.errors import DomainError
from botwarden.policy import Action
from botwarden.trading.reconcile_jobs import reconcile_bot

router = APIRouter(tags=["runners"])


@router.post("/api/bots/{bot_id}/reconcile")
def reconcile_route(bot_id: str, request: Request,
                    ctx: Guarded = Depends(guard(Action.RECONCILE))) -> dict[str, Any]:
    if ctx.bot is None:
        raise DomainError("NOT_FOUND", "no such bot", "Check the bot id.", status=404)
    # End the request's transaction (on SQLite it holds the write lock) before the reconcile
    # writes through its own connections.
    ctx.commit()
    return reconcile_bot(request.app.state.engine, request.app.state.settings, bot_id,
                         actor=ctx.actor_label, trace_id=ctx.trace_id)
