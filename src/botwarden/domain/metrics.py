"""Performance metrics of a run (domain.md, "Promotion gates" and "Research"): pure functions.

Every figure the gates, the evolution fitness and the tournament score read is defined here
once. Units follow the gate table: `win_rate` and `max_drawdown_pct` are percents (0-100),
money figures are account currency, Sharpe is annualised from daily returns with sqrt(252).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

TRADING_DAYS_PER_YEAR = 252


@dataclass(frozen=True, slots=True)
class Metrics:
    """The measured outcome of a backtest or of a stage's own trades.

    `net_pnl` is realised: the sum of closed trades, net of fees. `final_equity` also marks
    a position still open at the end to the last close. `profit_factor` is None when there
    is no losing trade (gross profit over a zero gross loss is undefined)."""

    trades: int
    winners: int
    losers: int
    net_pnl: float
    gross_profit: float
    gross_loss: float
    final_equity: float
    win_rate: float
    profit_factor: float | None
    expectancy: float
    sharpe: float
    max_drawdown_pct: float
    days: int

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TradeStats:
    """What the trade-level metrics need, summed once (a sweep sums it in vectorised code
    rather than handing thousands of PnLs per run to Python)."""

    trades: int
    winners: int
    losers: int
    gross_profit: float
    gross_loss: float  # a positive amount

    @classmethod
    def from_pnls(cls, trade_pnls: Sequence[float]) -> TradeStats:
        return cls(
            trades=len(trade_pnls),
            winners=sum(1 for pnl in trade_pnls if pnl > 0),
            losers=sum(1 for pnl in trade_pnls if pnl < 0),
            gross_profit=float(sum(pnl for pnl in trade_pnls if pnl > 0)),
            gross_loss=float(-sum(pnl for pnl in trade_pnls if pnl < 0)),
        )

    @property
    def net_pnl(self) -> float:
        return self.gross_profit - self.gross_loss

    @property
    def win_rate_pct(self) -> float:
        """Share of trades with a strictly positive net PnL, in percent; 0 without trades."""
        return 100.0 * self.winners / self.trades if self.trades else 0.0

    @property
    def profit_factor(self) -> float | None:
        """Gross profit / gross loss; None when nothing was lost."""
        return self.gross_profit / self.gross_loss if self.gross_loss > 0 else None

    @property
    def expectancy(self) -> float:
        """Mean net PnL per trade; 0 without trades."""
        return self.net_pnl / self.trades if self.trades else 0.0


def daily_returns(daily_equity: Sequence[float], starting_equity: float) -> list[float]:
    """Simple returns of each day's closing equity over the previous day's (the first day
    over the starting equity). A day starting at zero or negative equity has no return."""
    returns: list[float] = []
    previous = starting_equity
    for equity in daily_equity:
        if previous > 0:
            returns.append(equity / previous - 1.0)
        previous = equity
    return returns


def sharpe_ratio(returns: Sequence[float], periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """Mean over sample standard deviation (ddof=1) of the returns, times sqrt(periods per
    year); 0 when fewer than two returns or when they do not vary."""
    count = len(returns)
    if count < 2:
        return 0.0
    mean = sum(returns) / count
    variance = sum((r - mean) ** 2 for r in returns) / (count - 1)
    if variance <= 0:
        return 0.0
    return mean / math.sqrt(variance) * math.sqrt(periods_per_year)


def max_drawdown_pct(equity: Sequence[float], starting_equity: float) -> float:
    """Largest fall from a running peak of the equity curve, in percent of that peak. The
    starting equity is the first peak, so a loss from the first bar counts."""
    peak = starting_equity
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        if peak > 0:
            worst = max(worst, (peak - value) / peak)
    return 100.0 * worst


def compute_metrics(
    stats: TradeStats,
    daily_equity: Sequence[float],
    *,
    starting_equity: float,
    final_equity: float,
    drawdown_pct: float,
) -> Metrics:
    """Assemble the metrics. `drawdown_pct` comes from the per-bar equity curve, which a
    caller may not keep in memory (a sweep tracks it on the fly; `max_drawdown_pct` gives
    the definition)."""
    return Metrics(
        trades=stats.trades,
        winners=stats.winners,
        losers=stats.losers,
        net_pnl=stats.net_pnl,
        gross_profit=stats.gross_profit,
        gross_loss=stats.gross_loss,
        final_equity=final_equity,
        win_rate=stats.win_rate_pct,
        profit_factor=stats.profit_factor,
        expectancy=stats.expectancy,
        sharpe=sharpe_ratio(daily_returns(daily_equity, starting_equity)),
        max_drawdown_pct=drawdown_pct,
        days=len(daily_equity),
    )
