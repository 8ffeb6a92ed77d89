"""The autonomy score, 0-100, and its tiers (domain.md, "Autonomy score"). Pure.

Five parts, each scored from checks with declared points:
- data reliability 20: backtest count (5 or more: full), proof of real market data;
- decision quality 25: positive net profit, win rate (50 % or more: full), Sharpe (1.0 or
  more: full);
- risk discipline 25: drawdown band (under the 10 % warn band: full; under the 15 % REDUCING
  band: 2/3; under the 20 % HALTED band: 1/3), loser ratio within 0.2..0.6;
- execution health 20: trade count (50 or more: full), a fresh runner heartbeat, order
  rejections (none: full; 20 % or more: nothing);
- supervisor trust 10: a backtest within 30 days, no open circuit breaker, no kill within
  7 days and not killed now.
Missing evidence scores nothing for its check: a bot earns its autonomy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from botwarden.domain.gates import Performance


class Tier(StrEnum):
    FULL_AUTONOMY = "FULL_AUTONOMY"
    SEMI_AUTONOMOUS = "SEMI_AUTONOMOUS"
    SUPERVISED = "SUPERVISED"
    LOCKED = "LOCKED"


TIER_FLOORS: tuple[tuple[int, Tier], ...] = (
    (85, Tier.FULL_AUTONOMY), (70, Tier.SEMI_AUTONOMOUS), (50, Tier.SUPERVISED),
)


def tier_for(score: float) -> Tier:
    for floor, tier in TIER_FLOORS:
        if score >= floor:
            return tier
    return Tier.LOCKED


@dataclass(frozen=True, slots=True)
class Scale:
    """The figures where each check earns full points (defaults from domain.md's bands)."""

    full_backtests: int = 5
    full_win_rate_pct: float = 50.0
    full_sharpe: float = 1.0
    drawdown_bands_pct: tuple[float, float, float] = (10.0, 15.0, 20.0)
    loser_ratio_range: tuple[float, float] = (0.2, 0.6)
    full_trades: int = 50
    heartbeat_stale_seconds: float = 30.0
    rejection_ratio_zero_points: float = 0.2
    fresh_backtest_days: float = 30.0
    recent_kill_days: float = 7.0


@dataclass(frozen=True, slots=True)
class AutonomyInputs:
    backtest_count: int = 0
    market_data_proven: bool = False
    performance: Performance | None = None
    heartbeat_age_seconds: float | None = None  # None: no runner holding a heartbeat
    orders: int = 0  # recent orders, and how many of them the broker or risk rejected
    rejected_orders: int = 0
    last_backtest_age_days: float | None = None
    circuit_open: bool = False
    killed: bool = False
    days_since_last_kill: float | None = None


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    points: float
    max_points: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Part:
    id: str
    score: float
    max_score: int
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True, slots=True)
class AutonomyScore:
    score: int
    tier: Tier
    parts: tuple[Part, ...]


def _ratio(value: float | None, full: float) -> float:
    if value is None or full <= 0:
        return 0.0
    return max(0.0, min(value / full, 1.0))


def _part(part_id: str, max_score: int, checks: Sequence[Check]) -> Part:
    return Part(part_id, round(sum(c.points for c in checks), 2), max_score, tuple(checks))


def _data_reliability(i: AutonomyInputs, s: Scale) -> Part:
    return _part("data_reliability", 20, [
        Check("backtest_count", 10 * _ratio(i.backtest_count, s.full_backtests), 10,
              f"{i.backtest_count} completed backtests"),
        Check("market_data_proof", 10.0 if i.market_data_proven else 0.0, 10),
    ])


def _decision_quality(p: Performance, s: Scale) -> Part:
    profitable = p.net_pnl is not None and p.net_pnl > 0
    return _part("decision_quality", 25, [
        Check("net_profit", 10.0 if profitable else 0.0, 10, f"net PnL {p.net_pnl}"),
        Check("win_rate", 7.5 * _ratio(p.win_rate_pct, s.full_win_rate_pct), 7.5,
              f"win rate {p.win_rate_pct} %"),
        Check("sharpe", 7.5 * _ratio(p.sharpe, s.full_sharpe), 7.5, f"Sharpe {p.sharpe}"),
    ])


def _risk_discipline(p: Performance, s: Scale) -> Part:
    dd = p.max_drawdown_pct
    band_points = 0.0
    if dd is not None and dd >= 0:
        below = sum(1 for band in s.drawdown_bands_pct if dd < band)
        band_points = 15.0 * below / len(s.drawdown_bands_pct)
    low, high = s.loser_ratio_range
    loser_ratio = p.losers / p.trades if p.trades and p.losers is not None else None
    balanced = loser_ratio is not None and low <= loser_ratio <= high
    return _part("risk_discipline", 25, [
        Check("drawdown_band", band_points, 15, f"max drawdown {dd} %"),
        Check("loser_ratio", 10.0 if balanced else 0.0, 10, f"loser ratio {loser_ratio}"),
    ])


def _execution_health(i: AutonomyInputs, p: Performance, s: Scale) -> Part:
    fresh = i.heartbeat_age_seconds is not None and \
        i.heartbeat_age_seconds <= s.heartbeat_stale_seconds
    rejection_points = 0.0
    if i.orders > 0:
        ratio = i.rejected_orders / i.orders
        rejection_points = 6 * (1 - _ratio(ratio, s.rejection_ratio_zero_points))
    return _part("execution_health", 20, [
        Check("trade_count", 8 * _ratio(p.trades, s.full_trades), 8, f"{p.trades} trades"),
        Check("heartbeat_fresh", 6.0 if fresh else 0.0, 6,
              "no runner heartbeat" if i.heartbeat_age_seconds is None
              else f"last heartbeat {i.heartbeat_age_seconds:.0f} s ago"),
        Check("order_rejections", rejection_points, 6,
              f"{i.rejected_orders} of {i.orders} recent orders rejected"),
    ])


def _supervisor_trust(i: AutonomyInputs, s: Scale) -> Part:
    fresh_backtest = i.last_backtest_age_days is not None and \
        i.last_backtest_age_days <= s.fresh_backtest_days
    recent_kill = i.killed or (i.days_since_last_kill is not None
                               and i.days_since_last_kill < s.recent_kill_days)
    return _part("supervisor_trust", 10, [
        Check("fresh_backtest", 4.0 if fresh_backtest else 0.0, 4),
        Check("circuit_closed", 0.0 if i.circuit_open else 3.0, 3),
        Check("no_recent_kill", 0.0 if recent_kill else 3.0, 3),
    ])


def score_bot(inputs: AutonomyInputs, scale: Scale = Scale()) -> AutonomyScore:
    p = inputs.performance or Performance()
    parts = (
        _data_reliability(inputs, scale),
        _decision_quality(p, scale),
        _risk_discipline(p, scale),
        _execution_health(inputs, p, scale),
        _supervisor_trust(inputs, scale),
    )
    total = round(sum(part.score for part in parts))
    total = max(0, min(100, total))
    return AutonomyScore(total, tier_for(total), parts)


def score_account(scores: Sequence[AutonomyScore]) -> AutonomyScore:
    """The account's score: each part's mean over its bots (none: 0, LOCKED)."""
    if not scores:
        template = score_bot(AutonomyInputs(circuit_open=True, killed=True))
        empty = tuple(Part(p.id, 0.0, p.max_score) for p in template.parts)
        return AutonomyScore(0, Tier.LOCKED, empty)
    count = len(scores)
    parts = tuple(
        Part(first.id, round(sum(s.parts[k].score for s in scores) / count, 2), first.max_score)
        for k, first in enumerate(scores[0].parts)
    )
    total = max(0, min(100, round(sum(s.score for s in scores) / count)))
    return AutonomyScore(total, tier_for(total), parts)
