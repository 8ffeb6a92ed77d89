"""Bot CRUD, risk config and the live-trading toggle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Response
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, guard
from botwarden.api.schemas.bots import (
    BotCreate,
    BotOut,
    BotUpdate,
    RiskConfigOut,
    StrategySpec,
    TradingToggle,
)
from botwarden.clock import utcnow
from botwarden.domain.errors import NotFound
from botwarden.policy import Action
from botwarden.services import bots as bot_service
from botwarden.services.evidence import autonomy_scores
from botwarden.store.models import Account, Bot, RiskConfig

router = APIRouter(prefix="/api/bots", tags=["bots"])


def load_bot(session: Session, principal: Principal, bot_id: str) -> Bot:
    bot = session.get(Bot, bot_id)
    if bot is None or bot.account_id != principal.account_id:
        raise NotFound("bot")
    return bot


def bot_out(bot: Bot, pnl: tuple[Any, Any], risk: RiskConfig | None = None,
            autonomy_score: int | None = None) -> BotOut:
    return BotOut(
        id=bot.id, name=bot.name, strategy=StrategySpec(kind=bot.strategy_kind,
                                                        params=bot.strategy_params),
        symbol=bot.symbol, timeframe=bot.timeframe, stage=bot.stage,
        is_trading_enabled=bot.is_trading_enabled, kill_state=bot.kill_state,
        trading_state=bot.trading_state, live_pnl=pnl[0], sim_pnl=pnl[1],
        risk_config=risk.config if risk else None, created_at=bot.created_at,
        updated_at=bot.updated_at, autonomy_score=autonomy_score,
    )


def _autonomy(session: Session, bots: Sequence[Bot]) -> dict[str, int]:
    account = session.get(Account, bots[0].account_id) if bots else None
    if account is None:
        return {}
    scores = autonomy_scores(session, bots, account, now=utcnow())
    return {bot_id: score.score for bot_id, score in scores.items()}


def _one(session: Session, bot: Bot) -> BotOut:
    pnl = bot_service.pnl_by_bot(session, [bot.id])[bot.id]
    return bot_out(bot, pnl, session.get(RiskConfig, bot.id), _autonomy(session, [bot]).get(bot.id))


@router.post("", status_code=201, response_model=BotOut)
def create_bot(body: BotCreate, ctx: Guarded = Depends(guard(Action.BOT_CREATE))) -> BotOut:
    assert ctx.principal is not None
    bot = bot_service.create_bot(ctx.session, ctx.principal.account_id, body.model_dump())
    ctx.audit.target_type, ctx.audit.target_id = "bot", bot.id
    ctx.commit()
    return _one(ctx.session, bot)


@router.get("", response_model=list[BotOut])
def list_bots(
    stage: str | None = None,
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[BotOut]:
    query = sa.select(Bot).where(Bot.account_id == principal.account_id).order_by(Bot.created_at)
    if stage:
        query = query.where(Bot.stage == stage.upper())
    bots = session.scalars(query).all()
    pnl = bot_service.pnl_by_bot(session, [b.id for b in bots])
    scores = _autonomy(session, bots)
    return [bot_out(b, pnl[b.id], autonomy_score=scores.get(b.id)) for b in bots]


@router.get("/{bot_id}", response_model=BotOut)
def get_bot(bot_id: str, principal: Principal = Depends(current_principal),
            session: Session = Depends(get_session)) -> BotOut:
    return _one(session, load_bot(session, principal, bot_id))


def _update_facts(session: Session, bot: Bot | None, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"loosens_risk": bot_service.would_loosen(session, bot, body.get("risk_config"))}


@router.patch("/{bot_id}", response_model=BotOut)
def update_bot(bot_id: str, body: BotUpdate,
               ctx: Guarded = Depends(guard(Action.BOT_UPDATE, facts=_update_facts))) -> BotOut:
    assert ctx.bot is not None
    bot_service.update_bot(ctx.session, ctx.bot, body.model_dump(exclude_unset=True))
    ctx.commit()
    return _one(ctx.session, ctx.bot)


@router.delete("/{bot_id}", status_code=204)
def delete_bot(bot_id: str, ctx: Guarded = Depends(guard(Action.BOT_DELETE))) -> Response:
    assert ctx.bot is not None
    bot_service.delete_bot(ctx.session, ctx.bot)
    ctx.commit()
    return Response(status_code=204)


@router.get("/{bot_id}/risk-config", response_model=RiskConfigOut)
def get_risk_config(bot_id: str, principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> RiskConfigOut:
    bot = load_bot(session, principal, bot_id)
    row = session.get(RiskConfig, bot.id)
    if row is None:
        raise NotFound("risk config")
    return RiskConfigOut(bot_id=bot.id, config=row.config, version=row.version,
                         updated_at=row.updated_at)


def _risk_facts(session: Session, bot: Bot | None, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"loosens_risk": bot_service.would_loosen(session, bot, dict(body))}


@router.put("/{bot_id}/risk-config", response_model=RiskConfigOut)
def put_risk_config(
    bot_id: str, body: dict[str, Any],
    ctx: Guarded = Depends(guard(Action.RISK_CONFIG_UPDATE, facts=_risk_facts)),
) -> RiskConfigOut:
    assert ctx.bot is not None
    row = bot_service.set_risk_config(ctx.session, ctx.bot, body)
    ctx.commit()
    return RiskConfigOut(bot_id=row.bot_id, config=row.config, version=row.version,
                         updated_at=row.updated_at)


@router.post("/{bot_id}/trading", response_model=BotOut)
def toggle_trading(bot_id: str, body: TradingToggle,
                   ctx: Guarded = Depends(guard(Action.TRADING_TOGGLE))) -> BotOut:
    assert ctx.bot is not None
    bot_service.set_trading(ctx.bot, body.enabled)
    ctx.commit()
    return _one(ctx.session, ctx.bot)
