"""The trading record: trades, orders, positions, equity, decision and no-trade traces,
and the data-sanity counts. Reads only; every query is scoped to the caller's account."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.routers.bots import load_bot
from botwarden.store.models import (
    Bot,
    BotJob,
    EquitySnapshot,
    Fill,
    Order,
    Position,
    Trace,
    TradeLog,
)

router = APIRouter(tags=["trading record"])
SOURCES = ("LIVE", "PAPER", "SHADOW", "CANARY", "BACKTEST", "TEST")


class TradeOut(BaseModel):
    id: str
    bot_instance_id: str
    source_type: str
    symbol: str
    side: str
    qty: int
    entry_time: datetime
    exit_time: datetime
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    fees: Decimal
    is_invalid: bool


@router.get("/api/bots/{bot_id}/trades", response_model=list[TradeOut])
def trades(
    bot_id: str,
    source_type: str | None = Query(None, description="one of " + ", ".join(SOURCES)),
    include_invalid: bool = False,
    limit: int = Query(500, ge=1, le=5000),
    principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[TradeOut]:
    """Newest first. By default TEST and invalid rows are left out, as in every metric."""
    bot = load_bot(session, principal, bot_id)
    query = sa.select(TradeLog).where(TradeLog.bot_id == bot.id)
    if source_type:
        query = query.where(TradeLog.source_type == source_type.upper())
    else:
        query = query.where(TradeLog.source_type != "TEST")
    if not include_invalid:
        query = query.where(TradeLog.is_invalid.is_(False))
    rows = session.scalars(query.order_by(TradeLog.exit_time.desc()).limit(limit)).all()
    return [TradeOut.model_validate(r, from_attributes=True) for r in rows]


class OrderOut(BaseModel):
    id: str
    client_order_id: str
    broker_order_id: str | None
    broker: str
    mode: str
    symbol: str
    side: str
    qty: int
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: int
    avg_fill_price: Decimal | None
    reduce_only: bool
    reason: str | None
    reject_code: str | None
    created_at: datetime
    updated_at: datetime


@router.get("/api/bots/{bot_id}/orders", response_model=list[OrderOut])
def orders(
    bot_id: str, status: str | None = None, limit: int = Query(500, ge=1, le=5000),
    principal: Principal = Depends(current_principal), session: Session = Depends(get_session),
) -> list[OrderOut]:
    bot = load_bot(session, principal, bot_id)
    query = sa.select(Order).where(Order.bot_id == bot.id)
    if status:
        query = query.where(Order.status == status.upper())
    rows = session.scalars(query.order_by(Order.created_at.desc()).limit(limit)).all()
    return [OrderOut.model_validate(r, from_attributes=True) for r in rows]


class PositionOut(BaseModel):
    symbol: str
    qty: int
    avg_price: Decimal | None
    realized_pnl: Decimal
    fees: Decimal
    updated_at: datetime


@router.get("/api/bots/{bot_id}/positions", response_model=list[PositionOut])
def positions(bot_id: str, principal: Principal = Depends(current_principal),
              session: Session = Depends(get_session)) -> list[PositionOut]:
    bot = load_bot(session, principal, bot_id)
    rows = session.scalars(sa.select(Position).where(Position.bot_id == bot.id)).all()
    return [PositionOut.model_validate(r, from_attributes=True) for r in rows]


class EquityPoint(BaseModel):
    at: datetime
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal


@router.get("/api/bots/{bot_id}/equity", response_model=list[EquityPoint])
def equity(
    bot_id: str, since: datetime | None = None, limit: int = Query(2000, ge=1, le=20000),
    principal: Principal = Depends(current_principal), session: Session = Depends(get_session),
) -> list[EquityPoint]:
    bot = load_bot(session, principal, bot_id)
    query = sa.select(EquitySnapshot).where(EquitySnapshot.bot_id == bot.id)
    if since is not None:
        query = query.where(EquitySnapshot.at >= since)
    rows = session.scalars(query.order_by(EquitySnapshot.at.desc()).limit(limit)).all()
    return [EquityPoint.model_validate(r, from_attributes=True) for r in reversed(rows)]


class TraceOut(BaseModel):
    id: str
    job_id: str | None
    kind: str
    bar_time: datetime | None
    decision: str
    reason_code: str | None
    detail: dict[str, Any]
    created_at: datetime


def _traces(session: Session, principal: Principal, bot_id: str, kind: str,
            limit: int) -> list[TraceOut]:
    bot = load_bot(session, principal, bot_id)
    rows = session.scalars(sa.select(Trace).where(Trace.bot_id == bot.id, Trace.kind == kind)
                           .order_by(Trace.created_at.desc(), Trace.id.desc()).limit(limit)).all()
    return [TraceOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/api/bots/{bot_id}/decision-traces", response_model=list[TraceOut])
def decision_traces(bot_id: str, limit: int = Query(200, ge=1, le=5000),
                    principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> list[TraceOut]:
    """What the runner decided on each bar, and why, with the risk engine's verdict."""
    return _traces(session, principal, bot_id, "DECISION", limit)


@router.get("/api/bots/{bot_id}/no-trade-traces", response_model=list[TraceOut])
def no_trade_traces(bot_id: str, limit: int = Query(200, ge=1, le=5000),
                    principal: Principal = Depends(current_principal),
                    session: Session = Depends(get_session)) -> list[TraceOut]:
    """Bars on which the strategy wanted to trade and did not, with the reason."""
    return _traces(session, principal, bot_id, "NO_TRADE", limit)


class SanityOut(BaseModel):
    test_source_trades: int
    invalid_trades: int
    orphaned_jobs: int
    trades_without_context: int
    unresolved_orders: int
    fills_without_trade_context: int
    clean: bool


@router.get("/api/data-sanity", response_model=SanityOut)
def data_sanity(principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> SanityOut:
    """The audit's four sanity counts (all must be 0 in production) and a few more, for
    the caller's account."""
    mine = sa.select(Bot.id).where(Bot.account_id == principal.account_id)

    def count(query: sa.Select[Any]) -> int:
        return int(session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0)

    trades = sa.select(TradeLog.id).where(TradeLog.bot_id.in_(mine))
    counts = {
        "test_source_trades": count(trades.where(TradeLog.source_type == "TEST")),
        "invalid_trades": count(trades.where(TradeLog.is_invalid.is_(True))),
        "orphaned_jobs": count(
            sa.select(BotJob.id).outerjoin(Bot, Bot.id == BotJob.bot_id)
            .where(BotJob.account_id == principal.account_id, BotJob.bot_id.is_not(None),
                   Bot.id.is_(None))),
        "trades_without_context": count(
            sa.select(TradeLog.id).outerjoin(BotJob, BotJob.id == TradeLog.bot_instance_id)
            .where(TradeLog.bot_id.in_(mine), BotJob.id.is_(None))),
        "unresolved_orders": count(sa.select(Order.id).where(Order.bot_id.in_(mine),
                                                             Order.status == "UNRESOLVED")),
        "fills_without_trade_context": count(
            sa.select(Fill.id).outerjoin(Order, Order.id == Fill.order_id)
            .where(Fill.bot_id.in_(mine), Order.id.is_(None))),
    }
    clean = all(v == 0 for k, v in counts.items() if k != "unresolved_orders")
    return SanityOut(**counts, clean=clean)
