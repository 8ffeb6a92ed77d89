"""What a research run computes on: the strategy, the market, the execution settings and
the data range, resolved once when the run is created and stored with it (so a bot edited
while its job waits in the queue does not change what the job computes).

A bot's run takes the bot's strategy, parameters, symbol and timeframe, and its risk
config: stop-loss and profit target, the contract caps as pre-trade limits
(ExecutionConfig.with_risk_limits), flatten-before-close when `flatten_intraday` is on (the
domain default) and its drawdown limit for the stress test. Cash is the account's starting
capital, the same figure the gates measure a stage's own trades against.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from botwarden.domain.instruments import get_instrument
from botwarden.domain.risk_limits import RiskLimits
from botwarden.research.engine import ExecutionConfig
from botwarden.research.strategies import get_spec

DEFAULT_SLIPPAGE_TICKS = 1  # a market order on a micro future pays about a tick
DEFAULT_FLATTEN_MINUTES = 15  # domain.md: auto-flatten 15 minutes before the close, on
DEFAULT_DRAWDOWN_LIMIT_PCT = 20.0  # the TRIALS gate's maximum drawdown


@dataclass(frozen=True, slots=True)
class RunSpec:
    kind: str
    params: dict[str, Any]
    symbol: str
    timeframe: str
    config: ExecutionConfig
    flatten_minutes: int = DEFAULT_FLATTEN_MINUTES
    drawdown_limit_pct: float = DEFAULT_DRAWDOWN_LIMIT_PCT
    start: datetime | None = None
    end: datetime | None = None
    dataset: str | None = None

    def with_params(self, params: dict[str, Any]) -> RunSpec:
        return replace(self, params=params)

    def execution_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "tick_size": str(c.tick_size), "point_value": str(c.point_value),
            "commission_per_side": str(c.commission_per_side), "size": c.size,
            "slippage_ticks": c.slippage_ticks, "cash": str(c.cash),
            "stop_loss_ticks": c.stop_loss_ticks, "profit_target_ticks": c.profit_target_ticks,
            "max_order_qty": c.max_order_qty, "max_position": c.max_position,
            "flatten_before_close_minutes": self.flatten_minutes,
            "drawdown_limit_pct": self.drawdown_limit_pct,
        }

    def range_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None, "dataset": self.dataset}


def build_spec(
    *,
    kind: str,
    params: dict[str, Any],
    symbol: str,
    timeframe: str,
    cash: Decimal,
    limits: RiskLimits | None = None,
    size: int = 1,
    slippage_ticks: int | None = None,
    commission_per_side: Decimal | None = None,
    flatten_minutes: int | None = None,
    stop_loss_ticks: int | None = None,
    profit_target_ticks: int | None = None,
    drawdown_limit_pct: float | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    dataset: str | None = None,
) -> RunSpec:
    """A validated spec: the strategy's parameters normalised by its schema, the
    instrument's contract, the bot's risk limits (when given) under any explicit override."""
    normalised = get_spec(kind).bind(params).params.model_dump()
    instrument = get_instrument(symbol)
    config = ExecutionConfig.for_instrument(
        instrument, size=size, cash=cash,
        slippage_ticks=DEFAULT_SLIPPAGE_TICKS if slippage_ticks is None else slippage_ticks)
    if commission_per_side is not None:
        config = replace(config, commission_per_side=commission_per_side)
    flatten, drawdown = DEFAULT_FLATTEN_MINUTES, DEFAULT_DRAWDOWN_LIMIT_PCT
    if limits is not None:
        config = config.with_risk_limits(limits)
        flatten = limits.flatten_before_close_minutes if limits.flatten_intraday else 0
        drawdown = float(limits.max_drawdown_pct)
    if stop_loss_ticks is not None:
        config = replace(config, stop_loss_ticks=stop_loss_ticks)
    if profit_target_ticks is not None:
        config = replace(config, profit_target_ticks=profit_target_ticks)
    return RunSpec(
        kind=kind, params=normalised, symbol=instrument.symbol, timeframe=timeframe,
        config=config, flatten_minutes=flatten if flatten_minutes is None else flatten_minutes,
        drawdown_limit_pct=drawdown if drawdown_limit_pct is None else drawdown_limit_pct,
        start=start, end=end, dataset=dataset,
    )


def spec_from_json(kind: str, params: dict[str, Any], symbol: str, timeframe: str,
                   execution: dict[str, Any], window: dict[str, Any]) -> RunSpec:
    """The spec a run stored (`execution_json` and `range_json`)."""
    e = execution
    config = ExecutionConfig(
        tick_size=Decimal(e["tick_size"]), point_value=Decimal(e["point_value"]),
        commission_per_side=Decimal(e["commission_per_side"]), size=int(e["size"]),
        slippage_ticks=int(e["slippage_ticks"]), cash=Decimal(e["cash"]),
        stop_loss_ticks=int(e["stop_loss_ticks"]),
        profit_target_ticks=int(e["profit_target_ticks"]),
        max_order_qty=e.get("max_order_qty"), max_position=e.get("max_position"),
    )
    return RunSpec(
        kind=kind, params=dict(params), symbol=symbol, timeframe=timeframe, config=config,
        flatten_minutes=int(e["flatten_before_close_minutes"]),
        drawdown_limit_pct=float(e["drawdown_limit_pct"]),
        start=_when(window.get("start")), end=_when(window.get("end")),
        dataset=window.get("dataset"),
    )


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
