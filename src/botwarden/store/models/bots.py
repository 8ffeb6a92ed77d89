"""Bots, their risk configs, kill events, circuit breakers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from botwarden.domain.kill import KillEventType, KillState, TriggerCode
from botwarden.domain.stages import Stage
from botwarden.domain.trading import TradingState
from botwarden.store.models.base import Base, now_column, one_of, pk
from botwarden.store.types import JSONType, UTCDateTime


class Bot(Base):
    __tablename__ = "bots"

    id: Mapped[str] = pk()
    account_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    strategy_kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    strategy_params: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    symbol: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    timeframe: Mapped[str] = mapped_column(sa.String(8), nullable=False, default="1m")
    stage: Mapped[str] = mapped_column(sa.String(16), nullable=False, default=Stage.TRIALS.value)
    stage_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    is_trading_enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    # Cached fold of kill_events (the events are the record; this is kept in the same
    # transaction as each event so checks on the hot path stay one row read).
    kill_state: Mapped[str] = mapped_column(
        sa.String(16), nullable=False, default=KillState.NONE.value
    )
    trading_state: Mapped[str] = mapped_column(
        sa.String(16), nullable=False, default=TradingState.ACTIVE.value
    )
    created_at: Mapped[datetime] = now_column()
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        one_of("stage", [s.value for s in Stage], "stage"),
        one_of("kill_state", [s.value for s in KillState], "kill_state"),
        one_of("trading_state", [s.value for s in TradingState], "trading_state"),
        sa.CheckConstraint(
            "stage <> 'RETIRED' OR is_trading_enabled = false", name="retired_not_trading"
        ),
    )


class RiskConfig(Base):
    __tablename__ = "risk_configs"

    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = now_column()


class KillEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE)."""

    __tablename__ = "kill_events"

    id: Mapped[str] = pk()
    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[str] = mapped_column(
        sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    event_type: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    trigger_code: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    actor: Mapped[str] = mapped_column(sa.String(120), nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONType, nullable=False, default=dict
    )
    trace_id: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = now_column()

    __table_args__ = (
        one_of("event_type", [e.value for e in KillEventType], "event_type"),
        one_of("state", [s.value for s in KillState], "state"),
        one_of("trigger_code", [t.value for t in TriggerCode], "trigger_code"),
        sa.Index("ix_kill_events_bot_created", "bot_id", "created_at"),
    )


class CircuitBreaker(Base):
    __tablename__ = "circuit_breakers"

    bot_id: Mapped[str] = mapped_column(
        sa.ForeignKey("bots.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False, default="CLOSED")
    failures: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = now_column()

    __table_args__ = (one_of("state", ("CLOSED", "OPEN", "HALF_OPEN"), "state"),)
