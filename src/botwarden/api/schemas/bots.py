from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Timeframe = Literal["1m", "5m", "15m"]


class StrategySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)


class BotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    strategy: StrategySpec
    symbol: str = Field(default="MES", min_length=1, max_length=16)
    timeframe: Timeframe = "1m"
    risk_config: dict[str, Any]


class BotUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    strategy: StrategySpec | None = None
    symbol: str | None = Field(default=None, min_length=1, max_length=16)
    timeframe: Timeframe | None = None
    risk_config: dict[str, Any] | None = None


class BotOut(BaseModel):
    id: str
    name: str
    strategy: StrategySpec
    symbol: str
    timeframe: str
    stage: str
    is_trading_enabled: bool
    kill_state: str
    trading_state: str
    live_pnl: Decimal
    sim_pnl: Decimal
    autonomy_score: int | None = None
    risk_config: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime | None = None


class TradingToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class RiskConfigOut(BaseModel):
    bot_id: str
    config: dict[str, Any]
    version: int
    updated_at: datetime


class KillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="manual kill", max_length=1000)
    mode: Literal["SOFT", "HARD"] = "HARD"


class ResurrectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="manual resurrect", max_length=1000)


class KillStateOut(BaseModel):
    bot_id: str
    state: str
    trading_state: str
    killed_at: datetime | None
    trigger_code: str | None
    reason: str | None


class KillEventOut(BaseModel):
    id: str
    bot_id: str
    event_type: str
    state: str
    trigger_code: str
    reason: str
    actor: str
    metadata: dict[str, Any]
    trace_id: str | None
    created_at: datetime
