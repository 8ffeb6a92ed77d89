"""Promotion gates (domain.md, "Promotion gates"): the thresholds for leaving each stage, the
evidence they read, and the pure evaluation. No I/O: the service layer loads the evidence.

Rules of evaluation:
- Every gate answers id, required, actual, passed and unit. Missing evidence gives
  `actual = None` and `passed = False`: no evidence never passes and never errors.
- A profile changes thresholds, never the set of gates: the demo profile is lighter on
  volume (trades, days), and applies every gate the standard profile applies.
- The market-data gate always wants the provider, dataset and time range on record. Only a
  profile that declares `accepts_synthetic_data` (the demo profile, nothing else) lets
  synthetic bars meet it, and the gate's detail then says so; every other profile requires
  real market data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from botwarden.domain.metrics import (
    Metrics,
    TradeStats,
    compute_metrics,
    max_drawdown_pct,
)
from botwarden.domain.stages import Stage, next_stage

GateValue = int | float | bool


@dataclass(frozen=True, slots=True)
class GateResult:
    id: str
    required: GateValue
    actual: GateValue | None
    passed: bool
    unit: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "required": self.required, "actual": self.actual,
                "passed": self.passed, "unit": self.unit, "detail": self.detail}


# --- thresholds and profiles ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageGates:
    """What leaving one stage requires. `None` means the gate does not apply to the stage."""

    min_trades: int
    min_win_rate_pct: float
    max_drawdown_pct: float
    min_profit_factor: float
    min_expectancy_usd: float
    min_sharpe: float
    min_days: int | None = None
    min_losing_trades: int = 1  # a strategy without losers is treated as curve-fitted
    min_walk_forward_consistency: float | None = None
    max_overfit_ratio: float | None = None
    requires_stress_test: bool = False
    requires_human_approval: bool = False
    min_autonomy_score: int | None = None
    recent_backtests_passing: int | None = None


@dataclass(frozen=True, slots=True)
class GateProfile:
    name: str
    stages: Mapping[Stage, StageGates]
    # Whether recorded synthetic bars meet the market-data gate. True only for the demo
    # account, whose offline clone has nothing but the seeded synthetic set to trade on.
    accepts_synthetic_data: bool = False


STANDARD = GateProfile("standard", {
    Stage.TRIALS: StageGates(50, 35, 20, 1.2, 10, 0.5,
                             min_autonomy_score=50, recent_backtests_passing=3),
    Stage.PAPER: StageGates(100, 40, 15, 1.3, 15, 0.7, min_days=5),
    Stage.SHADOW: StageGates(200, 45, 12, 1.4, 20, 0.9, min_days=10,
                             min_walk_forward_consistency=0.5, max_overfit_ratio=2.5),
    Stage.CANARY: StageGates(300, 48, 10, 1.5, 25, 1.0, min_days=14,
                             min_walk_forward_consistency=0.6, max_overfit_ratio=2.0,
                             requires_stress_test=True, requires_human_approval=True),
})

# The demo account's profile: the same gates and quality thresholds, with the volume a demo
# can gather in a short session (trades and days), and the seeded synthetic bars accepted as
# the recorded market data (an offline clone has no other). Declared here and nowhere else.
_DEMO_VOLUME: Mapping[Stage, tuple[int, int | None]] = {
    Stage.TRIALS: (20, None), Stage.PAPER: (20, 1), Stage.SHADOW: (30, 2), Stage.CANARY: (40, 3),
}
DEMO = GateProfile("demo", {
    stage: replace(gates, min_trades=_DEMO_VOLUME[stage][0], min_days=_DEMO_VOLUME[stage][1])
    for stage, gates in STANDARD.stages.items()
}, accepts_synthetic_data=True)

PROFILES: Mapping[str, GateProfile] = {p.name: p for p in (STANDARD, DEMO)}


def gate_profile(name: str | None) -> GateProfile:
    """The named profile; an unknown name gets the standard (strictest) one: fail closed."""
    return PROFILES.get(name or "", STANDARD)


# --- evidence -------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    number = _finite(value)
    return int(number) if number is not None and number >= 0 else None


@dataclass(frozen=True, slots=True)
class Performance:
    """The figures the gates read. Each may be unknown (None): evidence recorded by another
    component may lack a figure, and that gate then reports not met."""

    trades: int | None = None
    losers: int | None = None
    net_pnl: float | None = None
    win_rate_pct: float | None = None
    profit_factor: float | None = None
    expectancy: float | None = None
    sharpe: float | None = None
    max_drawdown_pct: float | None = None
    days: int | None = None

    @classmethod
    def from_metrics(cls, m: Metrics) -> Performance:
        return cls(m.trades, m.losers, m.net_pnl, m.win_rate, m.profit_factor, m.expectancy,
                   m.sharpe, m.max_drawdown_pct, m.days)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Performance:
        """From stored metrics (the keys of `Metrics.as_dict`); bad values become None."""
        return cls(
            trades=_count(raw.get("trades")), losers=_count(raw.get("losers")),
            net_pnl=_finite(raw.get("net_pnl")), win_rate_pct=_finite(raw.get("win_rate")),
            profit_factor=_finite(raw.get("profit_factor")),
            expectancy=_finite(raw.get("expectancy")), sharpe=_finite(raw.get("sharpe")),
            max_drawdown_pct=_finite(raw.get("max_drawdown_pct")), days=_count(raw.get("days")),
        )


@dataclass(frozen=True, slots=True)
class MarketDataProof:
    """Where the evidence's bars came from (domain.md: provider, dataset and time range)."""

    provider: str | None
    dataset: str | None
    range_start: datetime | None
    range_end: datetime | None
    synthetic: bool = False

    @property
    def complete(self) -> bool:
        return bool(self.provider and self.dataset and self.range_start and self.range_end
                    and self.range_start < self.range_end)

    @property
    def is_real(self) -> bool:
        return self.complete and not self.synthetic

    def describe(self) -> str:
        if not self.complete:
            return "provider, dataset or time range not recorded"
        assert self.range_start is not None and self.range_end is not None
        kind = "synthetic " if self.synthetic else ""
        return (f"{kind}{self.provider}/{self.dataset} "
                f"{self.range_start.date().isoformat()}..{self.range_end.date().isoformat()}")


@dataclass(frozen=True, slots=True)
class WalkForward:
    consistency: float | None  # share of profitable out-of-sample windows, 0..1
    overfit_ratio: float | None  # in-sample Sharpe / out-of-sample Sharpe


@dataclass(frozen=True, slots=True)
class HumanApproval:
    """None: nothing on record (no step-up, no approval), which reads as no evidence."""

    step_up_active: bool | None  # a 2FA step-up within the last 5 minutes
    approval_valid: bool | None  # a signed, unexpired, unused approval token for this bot


@dataclass(frozen=True, slots=True)
class StageEvidence:
    performance: Performance | None = None
    market_data: MarketDataProof | None = None
    walk_forward: WalkForward | None = None
    stress_passed: bool | None = None
    approval: HumanApproval | None = None
    autonomy_score: int | None = None
    recent_backtests: tuple[bool, ...] = ()  # passed flags, newest first
    source: str = ""  # which evidence was read, for the caller


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    exit_time: datetime
    pnl: float  # net of fees


def performance_from_trades(
    trades: Sequence[ClosedTrade], starting_equity: float
) -> Performance | None:
    """A stage's figures from its own closed trades, through the metrics module. Daily
    returns run over every weekday from the first to the last exit (a quiet day is a zero
    return) plus any weekend day with an exit; `days` counts those days. None without trades."""
    if not trades:
        return None
    ordered = sorted(trades, key=lambda t: t.exit_time)
    pnl_by_day: dict[date, float] = {}
    for trade in ordered:
        day = trade.exit_time.date()
        pnl_by_day[day] = pnl_by_day.get(day, 0.0) + trade.pnl
    days = _trading_days(ordered[0].exit_time.date(), ordered[-1].exit_time.date(), pnl_by_day)
    equity, daily_equity = starting_equity, []
    for day in days:
        equity += pnl_by_day.get(day, 0.0)
        daily_equity.append(equity)
    curve, running = [], starting_equity
    for trade in ordered:
        running += trade.pnl
        curve.append(running)
    metrics = compute_metrics(
        TradeStats.from_pnls([t.pnl for t in ordered]), daily_equity,
        starting_equity=starting_equity, final_equity=running,
        drawdown_pct=max_drawdown_pct(curve, starting_equity),
    )
    return Performance.from_metrics(metrics)


def _trading_days(first: date, last: date, with_trades: Mapping[date, float]) -> list[date]:
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [d for d in span if d.weekday() < 5 or d in with_trades]


# --- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateEvaluation:
    stage: Stage
    next_stage: Stage | None
    profile: str
    gates: tuple[GateResult, ...] = field(default=())

    @property
    def eligible(self) -> bool:
        """Promotion is possible: there is a next stage, it has gates and all are met."""
        return self.next_stage is not None and bool(self.gates) and all(
            g.passed for g in self.gates)

    @property
    def failing(self) -> tuple[GateResult, ...]:
        return tuple(g for g in self.gates if not g.passed)

    def without(self, gate_ids: frozenset[str]) -> GateEvaluation:
        return replace(self, gates=tuple(g for g in self.gates if g.id not in gate_ids))


HUMAN_APPROVAL_GATES = frozenset({"step_up", "approval_token"})


def _at_least(gate_id: str, required: float, actual: float | None, unit: str,
              detail: str = "") -> GateResult:
    passed = actual is not None and actual >= required
    return GateResult(gate_id, required, actual, passed, unit, detail)


def _at_most(gate_id: str, required: float, actual: float | None, unit: str) -> GateResult:
    # A negative figure here (drawdown, overfit ratio) is not a good one: it is malformed or,
    # for the overfit ratio, an out-of-sample loss; neither passes.
    passed = actual is not None and 0 <= actual <= required
    return GateResult(gate_id, required, actual, passed, unit)


def _flag(gate_id: str, actual: bool | None, detail: str = "") -> GateResult:
    return GateResult(gate_id, True, actual, actual is True, "bool", detail)


def evaluate_gates(
    stage: Stage, evidence: StageEvidence, profile: GateProfile = STANDARD
) -> GateEvaluation:
    """Every gate for leaving `stage`. LIVE and RETIRED have no gates (nothing to leave to)."""
    target = next_stage(stage)
    rules = profile.stages.get(stage)
    if rules is None or target is None:
        return GateEvaluation(stage, target, profile.name)
    p = evidence.performance or Performance()
    pf_detail = "no losing trade: profit factor undefined" if p.losers == 0 else ""
    gates = [
        _at_least("min_trades", rules.min_trades, p.trades, "trades"),
        _at_least("min_win_rate", rules.min_win_rate_pct, p.win_rate_pct, "%"),
        _at_most("max_drawdown", rules.max_drawdown_pct, p.max_drawdown_pct, "%"),
        _at_least("min_profit_factor", rules.min_profit_factor, p.profit_factor, "ratio",
                  pf_detail),
        _at_least("min_expectancy", rules.min_expectancy_usd, p.expectancy, "$"),
        _at_least("min_sharpe", rules.min_sharpe, p.sharpe, "ratio"),
    ]
    if rules.min_days is not None:
        gates.append(_at_least("min_days", rules.min_days, p.days, "days"))
    gates.append(_at_least("min_losing_trades", rules.min_losing_trades, p.losers, "trades"))
    gates.append(_market_data_gate(evidence.market_data, profile))
    net = GateResult("positive_net_pnl", 0, p.net_pnl, p.net_pnl is not None and p.net_pnl > 0,
                     "$")
    gates.append(net)
    gates.extend(_extra_gates(rules, evidence))
    return GateEvaluation(stage, target, profile.name, tuple(gates))


def _market_data_gate(proof: MarketDataProof | None, profile: GateProfile) -> GateResult:
    """Proof of the market data used: required and met as a flag, with the detail naming
    what was required and what is on record."""
    if profile.accepts_synthetic_data:
        required = f"market data recorded (synthetic accepted: {profile.name} profile)"
        met = None if proof is None else proof.complete
    else:
        required = "real market data recorded"
        met = None if proof is None else proof.is_real
    actual = "nothing recorded" if proof is None else proof.describe()
    return _flag("real_market_data", met, f"required: {required}; actual: {actual}")


def _extra_gates(rules: StageGates, evidence: StageEvidence) -> list[GateResult]:
    gates: list[GateResult] = []
    if rules.min_walk_forward_consistency is not None:
        wf = evidence.walk_forward or WalkForward(None, None)
        gates.append(_at_least("walk_forward_consistency", rules.min_walk_forward_consistency,
                               wf.consistency, "ratio"))
        assert rules.max_overfit_ratio is not None
        gates.append(_at_most("overfit_ratio", rules.max_overfit_ratio, wf.overfit_ratio,
                              "ratio"))
    if rules.requires_stress_test:
        gates.append(_flag("stress_test", evidence.stress_passed))
    if rules.requires_human_approval:
        approval = evidence.approval
        gates.append(_flag("step_up", None if approval is None else approval.step_up_active,
                           "a 2FA step-up within the last 5 minutes"))
        gates.append(_flag("approval_token",
                           None if approval is None else approval.approval_valid,
                           "a signed approval token, unexpired and unused"))
    if rules.min_autonomy_score is not None:
        gates.append(_at_least("autonomy_score", rules.min_autonomy_score,
                               evidence.autonomy_score, "score"))
    if rules.recent_backtests_passing is not None:
        needed = rules.recent_backtests_passing
        recent = evidence.recent_backtests[:needed]
        passing = sum(recent) if recent else None
        gates.append(GateResult(
            "recent_backtests_passed", needed, passing,
            len(recent) == needed and all(recent), "backtests",
            f"the last {needed} backtests must all pass ({len(recent)} on record)"))
    return gates
