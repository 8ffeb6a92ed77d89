"""Bot configuration: create, update, delete, risk config, the live-trading toggle."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import get_instrument
from botwarden.domain.risk_limits import RiskLimits, loosens, parse_risk_limits
from botwarden.domain.stages import Stage
from botwarden.store.models import Bot, Order, RiskConfig, TradeLog

LIVE_SOURCES = ("LIVE", "CANARY")
SIM_SOURCES = ("PAPER", "SHADOW")
CENT = Decimal("0.01")


def validate_strategy(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Check kind and parameters against the strategy catalogue; returns normalised params."""
    from botwarden.research.catalogue import validate_params

    return validate_params(kind, params)


def create_bot(session: Session, account_id: str, data: dict[str, Any]) -> Bot:
    symbol = get_instrument(data["symbol"]).symbol
    params = validate_strategy(data["strategy"]["kind"], data["strategy"].get("params") or {})
    limits = parse_risk_limits(data["risk_config"])
    bot = Bot(account_id=account_id, name=data["name"], strategy_kind=data["strategy"]["kind"],
              strategy_params=params, symbol=symbol, timeframe=data["timeframe"],
              stage=Stage.TRIALS.value, is_trading_enabled=False, stage_changed_at=utcnow())
    session.add(bot)
    session.flush()
    session.add(RiskConfig(bot_id=bot.id, config=limits.to_json(), version=1))
    return bot


def current_limits(session: Session, bot_id: str) -> RiskLimits | None:
    row = session.get(RiskConfig, bot_id)
    if row is None:
        return None
    try:
        return parse_risk_limits(row.config)
    except DomainError:
        return None


def would_loosen(session: Session, bot: Bot | None, new_config: Any) -> bool:
    """For the policy: does this new config allow more risk than the stored one? A config
    that does not parse is treated as loosening (fail closed); it is refused later anyway."""
    if bot is None or not isinstance(new_config, dict):
        return False
    old = current_limits(session, bot.id)
    try:
        new = parse_risk_limits(new_config)
    except DomainError:
        return True
    return old is None or loosens(old, new)


def set_risk_config(session: Session, bot: Bot, raw: dict[str, Any]) -> RiskConfig:
    limits = parse_risk_limits(raw)
    row = session.get(RiskConfig, bot.id)
    if row is None:
        row = RiskConfig(bot_id=bot.id, config=limits.to_json(), version=1)
        session.add(row)
    else:
        row.config = limits.to_json()
        row.version += 1
        row.updated_at = utcnow()
    bot.updated_at = utcnow()
    return row


def update_bot(session: Session, bot: Bot, changes: dict[str, Any]) -> Bot:
    reshapes = "symbol" in changes or "strategy" in changes or "timeframe" in changes
    if reshapes and bot.stage != Stage.TRIALS.value and _has_open_orders(session, bot.id):
        raise DomainError("BOT_BUSY", "cannot change symbol or strategy with working orders",
                          "Stop the runner and let orders settle first.")
    if changes.get("name") is not None:
        bot.name = changes["name"]
    if changes.get("symbol") is not None:
        bot.symbol = get_instrument(changes["symbol"]).symbol
    if changes.get("timeframe") is not None:
        bot.timeframe = changes["timeframe"]
    if changes.get("strategy") is not None:
        kind = changes["strategy"]["kind"]
        bot.strategy_params = validate_strategy(kind, changes["strategy"].get("params") or {})
        bot.strategy_kind = kind
    if changes.get("risk_config") is not None:
        set_risk_config(session, bot, changes["risk_config"])
    bot.updated_at = utcnow()
    return bot


def _has_open_orders(session: Session, bot_id: str) -> bool:
    open_states = ("PENDING", "SENT", "WORKING", "PARTIALLY_FILLED", "UNRESOLVED")
    # COUNT(*) without GROUP BY always yields one row: scalar() (typed Optional) is an int here
    return cast(int, session.scalar(
        sa.select(sa.func.count()).select_from(Order)
        .where(Order.bot_id == bot_id, Order.status.in_(open_states))
    )) > 0


def delete_bot(session: Session, bot: Bot) -> None:
    """Only a bot that never put money at risk may be deleted; others are retired."""
    if bot.stage not in (Stage.TRIALS.value, Stage.RETIRED.value):
        raise DomainError("BOT_ACTIVE", f"a {bot.stage} bot cannot be deleted",
                          "Retire it (POST /api/bots/{id}/retire) first.")
    traded = session.scalar(sa.select(sa.func.count()).select_from(Order)
                            .where(Order.bot_id == bot.id))
    if traded:
        raise DomainError("BOT_HAS_HISTORY", "this bot has orders on record",
                          "Retire it instead; its trading record is kept.")
    session.delete(bot)


def set_trading(bot: Bot, enabled: bool) -> None:
    bot.is_trading_enabled = enabled
    bot.updated_at = utcnow()


def pnl_by_bot(session: Session, bot_ids: Sequence[str]) -> dict[str, tuple[Decimal, Decimal]]:
    """(live_pnl, sim_pnl) per bot from trade_logs, excluding TEST and invalid rows."""
    if not bot_ids:
        return {}
    rows = session.execute(
        sa.select(TradeLog.bot_id, TradeLog.source_type, sa.func.sum(TradeLog.pnl))
        .where(TradeLog.bot_id.in_(bot_ids), TradeLog.is_invalid.is_(False),
               TradeLog.source_type.in_(LIVE_SOURCES + SIM_SOURCES))
        .group_by(TradeLog.bot_id, TradeLog.source_type)
    ).all()
    out = {bot_id: (Decimal(0), Decimal(0)) for bot_id in bot_ids}
    for bot_id, source, total in rows:
        # SQLite sums the text-stored decimals as floats; cents are exact at these sizes.
        amount = Decimal(str(total or 0)).quantize(CENT)
        live, sim = out[bot_id]
        out[bot_id] = (live + amount, sim) if source in LIVE_SOURCES else (live, sim + amount)
    return out
