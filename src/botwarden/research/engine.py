"""The backtest engine: a strategy's targets through the fill kernel to trades and metrics.

    strategy = build_strategy("sma_cross", {"fast": 10, "slow": 30})
    config = ExecutionConfig.for_instrument(get_instrument("MES"), size=1, slippage_ticks=1)
    result = run_backtest(bars, strategy, config)
    result.metrics, result.trades()

Semantics of fills, fees, stops and the pre-trade seam: see research.fill_kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from botwarden.domain.bars import F64, I64, TIMEFRAME_SECONDS, Bars
from botwarden.domain.errors import DomainError
from botwarden.domain.instruments import Instrument
from botwarden.domain.metrics import Metrics, TradeStats, compute_metrics
from botwarden.domain.risk_limits import RiskLimits
from botwarden.research import fill_kernel as fk
from botwarden.research.ledger import ledger_trade_pnls
from botwarden.research.sessions import sessions_from_gaps, utc_days
from botwarden.research.strategies.base import Strategy
from botwarden.research.ticks import TickBars, to_tick_bars


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    """Contract, costs and risk limits of a backtest. Stop-loss and profit target come from
    the bot's risk config (0 = none). Pre-trade limits default to the order size."""

    tick_size: Decimal
    point_value: Decimal
    commission_per_side: Decimal
    size: int = 1
    slippage_ticks: int = 0
    cash: Decimal = Decimal(100_000)
    stop_loss_ticks: int = 0
    profit_target_ticks: int = 0
    max_order_qty: int | None = None
    max_position: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.tick_size <= 0 or self.point_value <= 0:
            problems.append("tick size and point value must be positive")
        if self.size < 1:
            problems.append("size must be at least one contract")
        if min(self.slippage_ticks, self.stop_loss_ticks, self.profit_target_ticks) < 0:
            problems.append("slippage, stop-loss and profit target are counts of ticks >= 0")
        if self.commission_per_side < 0 or self.cash <= 0:
            problems.append("commission must be >= 0 and cash > 0")
        if problems:
            raise DomainError("INVALID_BACKTEST_CONFIG", "; ".join(problems),
                              "Correct the execution settings.", status=422)

    @classmethod
    def for_instrument(cls, instrument: Instrument, **overrides: Any) -> ExecutionConfig:
        """The instrument's grid, point value and default commission, with overrides."""
        base = cls(instrument.tick_size, instrument.point_value, instrument.commission_per_side)
        return replace(base, **overrides)

    def with_risk_limits(self, limits: RiskLimits) -> ExecutionConfig:
        """The bot's risk config applied: its stop-loss and profit target, and its contract
        caps as the pre-trade limits every backtest order must pass."""
        return replace(
            self,
            stop_loss_ticks=limits.stop_loss_ticks or 0,
            profit_target_ticks=limits.profit_target_ticks or 0,
            max_order_qty=limits.max_contracts_per_order,
            max_position=limits.max_position_contracts,
        )

    @property
    def tick_value(self) -> Decimal:
        return self.tick_size * self.point_value

    def vector(self) -> F64:
        cfg = np.zeros(fk.CFG_LEN, dtype=np.float64)
        cfg[fk.CFG_SIZE] = self.size
        cfg[fk.CFG_TICK_VALUE] = float(self.tick_value)
        cfg[fk.CFG_FEE] = float(self.commission_per_side)
        cfg[fk.CFG_SLIPPAGE] = self.slippage_ticks
        cfg[fk.CFG_STOP] = self.stop_loss_ticks
        cfg[fk.CFG_TARGET] = self.profit_target_ticks
        cfg[fk.CFG_CASH] = float(self.cash)
        cfg[fk.CFG_MAX_ORDER] = self.size if self.max_order_qty is None else self.max_order_qty
        cfg[fk.CFG_MAX_POSITION] = self.size if self.max_position is None else self.max_position
        return cfg


@dataclass(frozen=True, slots=True)
class Trade:
    entry_time: datetime
    exit_time: datetime
    side: str  # LONG or SHORT
    qty: int
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal  # net of both sides' fees, exact (the ledger's figure)
    exit_reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "entry_time": self.entry_time.isoformat(),
            "exit_time": self.exit_time.isoformat(),
            "side": self.side,
            "qty": self.qty,
            "entry_price": float(self.entry_price),
            "exit_price": float(self.exit_price),
            "pnl": float(self.pnl),
            "exit_reason": self.exit_reason,
        }


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """A position still open after the last bar, marked to that bar's close."""

    side: str
    qty: int
    entry_time: datetime
    entry_price: Decimal
    mark_price: Decimal


@dataclass(frozen=True)
class BacktestResult:
    """Closed trades as kernel columns (see fill_kernel.T_*), their float PnLs, the equity
    curve (None when not recorded), each day's closing equity and the metrics."""

    config: ExecutionConfig
    ts: I64
    records: I64
    pnls: F64
    equity: F64 | None
    daily_equity: F64
    metrics: Metrics
    denials: dict[str, int]
    open_position: OpenPosition | None
    targets: npt.NDArray[np.int8] = field(repr=False)

    def trades(self) -> list[Trade]:
        exact = ledger_trade_pnls(self.records, self.config)
        tick = self.config.tick_size
        return [
            Trade(
                entry_time=_utc(self.ts[row[fk.T_ENTRY_BAR]]),
                exit_time=_utc(self.ts[row[fk.T_EXIT_BAR]]),
                side="LONG" if row[fk.T_SIDE] > 0 else "SHORT",
                qty=int(row[fk.T_QTY]),
                entry_price=tick * int(row[fk.T_ENTRY_TICKS]),
                exit_price=tick * int(row[fk.T_EXIT_TICKS]),
                pnl=pnl,
                exit_reason=fk.EXIT_REASONS[row[fk.T_REASON]],
            )
            for row, pnl in zip(self.records, exact, strict=True)
        ]


def _utc(ns: np.int64) -> datetime:
    seconds, nanos = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)


def bar_duration_ns(bars: Bars | TickBars) -> int:
    """The bar interval: from the timeframe name, else the smallest gap between bars."""
    seconds = TIMEFRAME_SECONDS.get(getattr(bars, "timeframe", ""))
    if seconds:
        return seconds * 1_000_000_000
    return int(np.diff(bars.ts).min()) if len(bars) > 1 else 60_000_000_000


def simulate_targets(
    bars: TickBars,
    targets: npt.NDArray[np.int8],
    config: ExecutionConfig,
    *,
    days: I64,
    flatten: npt.NDArray[np.bool_] | None = None,
    record_equity: bool = True,
) -> BacktestResult:
    """Fill `targets` (one per bar) on `bars`. `days` labels each bar's trading day: the
    daily equity (Sharpe, days) is taken at each day's last bar."""
    n = len(bars)
    if targets.shape != (n,) or days.shape != (n,):
        raise ValueError("targets and days need one value per bar")
    flags: npt.NDArray[np.bool_] = np.zeros(n, dtype=np.bool_)
    if flatten is not None:
        flags = np.ascontiguousarray(flatten, dtype=np.bool_)
    records = np.empty((fk.trade_capacity(targets), fk.TRADE_COLUMNS), dtype=np.int64)
    pnls: F64 = np.empty(records.shape[0], dtype=np.float64)
    equity = np.empty(n if record_equity else 0, dtype=np.float64)
    day_count = int(np.count_nonzero(days[1:] != days[:-1])) + 1 if n else 0
    daily_equity = np.empty(day_count, dtype=np.float64)
    denials = np.zeros(len(fk.PRETRADE_CODES), dtype=np.int64)
    count, drawdown, final_equity, position, entry_ticks, entry_bar = fk.simulate(
        bars.open, bars.high, bars.low, bars.close, targets, days, flags, config.vector(),
        records, pnls, equity, daily_equity, denials,
    )
    pnls = pnls[:count]
    stats = TradeStats(
        trades=int(count),
        winners=int(np.count_nonzero(pnls > 0)),
        losers=int(np.count_nonzero(pnls < 0)),
        gross_profit=float(pnls[pnls > 0].sum()),
        gross_loss=float(-pnls[pnls < 0].sum()),
    )
    metrics = compute_metrics(
        stats, daily_equity.tolist(), starting_equity=float(config.cash),
        final_equity=float(final_equity) if n else float(config.cash), drawdown_pct=float(drawdown),
    )
    open_position = None
    if position != 0:
        open_position = OpenPosition("LONG" if position > 0 else "SHORT", abs(int(position)),
                                     _utc(bars.ts[entry_bar]), bars.price(int(entry_ticks)),
                                     bars.price(int(bars.close[-1])))
    return BacktestResult(
        config=config, ts=bars.ts, records=records[:count], pnls=pnls,
        equity=equity if record_equity else None, daily_equity=daily_equity, metrics=metrics,
        denials={code: int(denials[k]) for k, code in enumerate(fk.PRETRADE_CODES) if k},
        open_position=open_position, targets=targets,
    )


def run_backtest(
    bars: Bars | TickBars,
    strategy: Strategy,
    config: ExecutionConfig,
    *,
    sessions: I64 | None = None,
    days: I64 | None = None,
    flatten: npt.NDArray[np.bool_] | None = None,
    record_equity: bool = True,
) -> BacktestResult:
    """Backtest `strategy` from its initial state on `bars`. Session ids (calendar) default
    to `sessions_from_gaps`, trading days to UTC dates; `flatten` marks the no-hold bars
    before each session close."""
    tick_bars = bars if isinstance(bars, TickBars) else to_tick_bars(bars, config.tick_size)
    if tick_bars.tick_size != config.tick_size:
        raise ValueError("bars are on another tick grid than the config")
    if sessions is None:
        sessions = sessions_from_gaps(tick_bars.ts)
    targets = strategy.run(tick_bars, strategy.initial_state(), sessions)
    if days is None:
        days = utc_days(tick_bars.ts)
    return simulate_targets(tick_bars, targets, config, days=days, flatten=flatten,
                            record_equity=record_equity)
