"""Each bot's promotion evidence, loaded from the store in a fixed number of queries, and
turned into the inputs of the pure gates and autonomy score (domain/gates.py,
domain/autonomy.py).

Evidence, and why it is chosen so:
- TRIALS reads the bot's completed BACKTEST research runs for its *current* configuration
  (same strategy kind, parameters and symbol): a backtest of other parameters proves nothing
  about this bot. The gate figures come from one run, the latest one whose market data is
  proven real (provider, dataset and range recorded, not synthetic), else the latest one
  (whose market-data gate then fails). One run rather than an aggregate, because runs over
  different ranges do not add up to one equity curve; the "last 3 backtests pass" gate
  looks at the three newest runs.
- SHADOW and CANARY also read the latest completed WALK_FORWARD run (metrics `consistency`
  and `overfit_ratio`, or `in_sample_sharpe` / `out_of_sample_sharpe`) and, for CANARY, the
  latest STRESS run (its `passed`), for the current configuration and on real market data.
- PAPER, SHADOW and CANARY read the stage's own trades (source_type equal to the stage,
  TEST and invalid rows excluded), through `performance_from_trades`. Their market-data
  proof is what the producing RUNNER jobs recorded in their payload (`provider`, `dataset`)
  over the trades' time range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.clock import as_utc
from botwarden.domain.autonomy import AutonomyInputs, AutonomyScore, score_bot
from botwarden.domain.gates import (
    ClosedTrade,
    HumanApproval,
    MarketDataProof,
    Performance,
    StageEvidence,
    WalkForward,
    performance_from_trades,
)
from botwarden.domain.kill import KillState
from botwarden.domain.stages import Stage
from botwarden.store.models import (
    Account,
    Bot,
    BotJob,
    CircuitBreaker,
    KillEvent,
    Order,
    ResearchRun,
    TradeLog,
)

TRADE_STAGES = frozenset({Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE})
RECENT_ORDERS = timedelta(hours=24)
# How the data layer names data that is not real market data (bar_store's synthetic set).
SYNTHETIC_PROVIDERS = frozenset({"synthetic", "synth"})
SYNTHETIC_DATASETS = frozenset({"SYNTH"})


@dataclass(frozen=True, slots=True)
class RunFacts:
    id: str
    kind: str
    passed: bool
    metrics: dict[str, Any]
    proof: MarketDataProof
    finished_at: datetime


@dataclass
class BotEvidence:
    backtests: list[RunFacts] = field(default_factory=list)  # newest first
    walk_forward: RunFacts | None = None
    stress: RunFacts | None = None
    trades: list[ClosedTrade] = field(default_factory=list)  # the current stage's own
    trade_proof: MarketDataProof | None = None
    heartbeat_at: datetime | None = None
    orders: int = 0
    rejected_orders: int = 0
    last_kill_at: datetime | None = None
    circuit_open: bool = False

    @property
    def gate_backtest(self) -> RunFacts | None:
        real = [run for run in self.backtests if run.proof.is_real]
        return real[0] if real else (self.backtests[0] if self.backtests else None)


def _is_synthetic(provider: str | None, dataset: str | None) -> bool:
    return (provider or "").lower() in SYNTHETIC_PROVIDERS or (dataset or "") in SYNTHETIC_DATASETS


def _proof(provider: str | None, dataset: str | None, start: datetime | None,
           end: datetime | None) -> MarketDataProof:
    return MarketDataProof(provider, dataset, start, end, _is_synthetic(provider, dataset))


def _same_config(run: Any, bot: Bot) -> bool:
    return bool(run.strategy_kind == bot.strategy_kind and run.symbol == bot.symbol
                and (run.params or {}) == (bot.strategy_params or {}))


# --- loading ------------------------------------------------------------------------------


def load_evidence(
    session: Session, bots: Sequence[Bot], *, now: datetime
) -> dict[str, BotEvidence]:
    """Every bot's evidence in a fixed number of queries (the bot list reads it too)."""
    out = {bot.id: BotEvidence() for bot in bots}
    if not bots:
        return out
    by_id = {bot.id: bot for bot in bots}
    ids = list(by_id)
    _load_research(session, by_id, out)
    _load_trades(session, by_id, out)
    for bot_id, beat in session.execute(
        sa.select(BotJob.bot_id, sa.func.max(BotJob.last_heartbeat_at))
        .where(BotJob.bot_id.in_(ids), BotJob.job_type == "RUNNER",
               BotJob.status.in_(("RUNNING", "DEGRADED")))
        .group_by(BotJob.bot_id)
    ).all():
        if bot_id is not None:
            out[bot_id].heartbeat_at = as_utc(beat) if beat else None
    rejected = sa.func.sum(sa.case((Order.status == "REJECTED", 1), else_=0))
    for bot_id, total, bad in session.execute(
        sa.select(Order.bot_id, sa.func.count(), rejected)
        .where(Order.bot_id.in_(ids), Order.created_at >= now - RECENT_ORDERS)
        .group_by(Order.bot_id)
    ).all():
        out[bot_id].orders, out[bot_id].rejected_orders = int(total), int(bad or 0)
    for bot_id, at in session.execute(
        sa.select(KillEvent.bot_id, sa.func.max(KillEvent.created_at))
        .where(KillEvent.bot_id.in_(ids), KillEvent.event_type == "KILL")
        .group_by(KillEvent.bot_id)
    ).all():
        out[bot_id].last_kill_at = as_utc(at) if at else None
    for bot_id, state in session.execute(
        sa.select(CircuitBreaker.bot_id, CircuitBreaker.state)
        .where(CircuitBreaker.bot_id.in_(ids))
    ).all():
        out[bot_id].circuit_open = state == "OPEN"
    return out


def _load_research(session: Session, bots: dict[str, Bot], out: dict[str, BotEvidence]) -> None:
    r = ResearchRun
    finished = sa.func.coalesce(r.completed_at, r.created_at)
    rows = session.execute(
        # Not `result`: it may hold a whole trade list and equity curve.
        sa.select(r.id, r.bot_id, r.kind, r.strategy_kind, r.params, r.symbol, r.provider,
                  r.dataset, r.range_start, r.range_end, r.metrics, r.passed,
                  finished.label("finished_at"))
        .where(r.bot_id.in_(list(bots)), r.status == "COMPLETED",
               r.kind.in_(("BACKTEST", "WALK_FORWARD", "STRESS")))
        .order_by(finished.desc(), r.id.desc())
    ).all()
    for row in rows:
        if not _same_config(row, bots[row.bot_id]):
            continue
        facts = RunFacts(row.id, row.kind, row.passed is True, dict(row.metrics or {}),
                         _proof(row.provider, row.dataset, row.range_start, row.range_end),
                         as_utc(row.finished_at))
        evidence = out[row.bot_id]
        if row.kind == "BACKTEST":
            evidence.backtests.append(facts)
        # Walk-forward and stress results count only on real market data: they have no
        # market-data gate of their own to report a synthetic run.
        elif row.kind == "WALK_FORWARD" and evidence.walk_forward is None and facts.proof.is_real:
            evidence.walk_forward = facts
        elif row.kind == "STRESS" and evidence.stress is None and facts.proof.is_real:
            evidence.stress = facts


def _load_trades(session: Session, bots: dict[str, Bot], out: dict[str, BotEvidence]) -> None:
    sources = {bot.id: bot.stage for bot in bots.values() if Stage(bot.stage) in TRADE_STAGES}
    if not sources:
        return
    rows = session.execute(
        sa.select(TradeLog.bot_id, TradeLog.source_type, TradeLog.entry_time,
                  TradeLog.exit_time, TradeLog.pnl, TradeLog.bot_instance_id)
        .where(TradeLog.bot_id.in_(list(sources)), TradeLog.is_invalid.is_(False),
               TradeLog.source_type.in_(set(sources.values())))
    ).all()
    instances: dict[str, set[str]] = {}
    spans: dict[str, tuple[datetime, datetime]] = {}
    for row in rows:
        if sources[row.bot_id] != row.source_type:
            continue
        entry, exit_ = as_utc(row.entry_time), as_utc(row.exit_time)
        out[row.bot_id].trades.append(ClosedTrade(exit_, float(row.pnl)))
        instances.setdefault(row.bot_id, set()).add(row.bot_instance_id)
        first, last = spans.get(row.bot_id, (entry, exit_))
        spans[row.bot_id] = (min(first, entry), max(last, exit_))
    job_ids = {job for jobs in instances.values() for job in jobs}
    payloads: dict[str, dict[str, Any]] = {}
    if job_ids:
        payloads.update(session.execute(
            sa.select(BotJob.id, BotJob.payload).where(BotJob.id.in_(job_ids))).tuples().all())
    for bot_id, jobs in instances.items():
        sources_seen = {(str((payloads.get(j) or {}).get("provider") or ""),
                         str((payloads.get(j) or {}).get("dataset") or "")) for j in jobs}
        start, end = spans[bot_id]
        # Every producing runner must have recorded its data; otherwise nothing is proven.
        proven = all(p and d for p, d in sources_seen)
        provider = "+".join(sorted({p for p, _ in sources_seen})) if proven else None
        dataset = "+".join(sorted({d for _, d in sources_seen})) if proven else None
        synthetic = any(_is_synthetic(p, d) for p, d in sources_seen)
        out[bot_id].trade_proof = MarketDataProof(provider, dataset, start, end, synthetic)


# --- evaluation ---------------------------------------------------------------------------


def _performance(bot: Bot, evidence: BotEvidence, account: Account) -> Performance | None:
    if Stage(bot.stage) in TRADE_STAGES:
        return performance_from_trades(evidence.trades, float(account.starting_capital))
    run = evidence.gate_backtest
    return Performance.from_mapping(run.metrics) if run else None


def autonomy_inputs(bot: Bot, evidence: BotEvidence, account: Account,
                    *, now: datetime) -> AutonomyInputs:
    """A bot in a trading stage is judged on its own trades once it has some, before that
    on the backtest that earned it the stage."""
    performance = _performance(bot, evidence, account)
    proof = evidence.trade_proof
    if performance is None:
        run = evidence.gate_backtest
        performance = Performance.from_mapping(run.metrics) if run else None
        proof = run.proof if run else None
    elif Stage(bot.stage) not in TRADE_STAGES:
        proof = evidence.gate_backtest.proof if evidence.gate_backtest else None
    latest = evidence.backtests[0].finished_at if evidence.backtests else None
    return AutonomyInputs(
        backtest_count=len(evidence.backtests),
        market_data_proven=proof is not None and proof.is_real,
        performance=performance,
        heartbeat_age_seconds=(now - evidence.heartbeat_at).total_seconds()
        if evidence.heartbeat_at else None,
        orders=evidence.orders, rejected_orders=evidence.rejected_orders,
        last_backtest_age_days=(now - latest).total_seconds() / 86400 if latest else None,
        circuit_open=evidence.circuit_open,
        killed=bot.kill_state != KillState.NONE.value,
        days_since_last_kill=(now - evidence.last_kill_at).total_seconds() / 86400
        if evidence.last_kill_at else None,
    )


def autonomy_scores(session: Session, bots: Sequence[Bot], account: Account,
                    *, now: datetime) -> dict[str, AutonomyScore]:
    evidence = load_evidence(session, bots, now=now)
    return {bot.id: score_bot(autonomy_inputs(bot, evidence[bot.id], account, now=now))
            for bot in bots}


def stage_evidence(bot: Bot, evidence: BotEvidence, account: Account, *, now: datetime,
                   approval: HumanApproval | None = None) -> StageEvidence:
    stage = Stage(bot.stage)
    wf = evidence.walk_forward
    walk_forward = _walk_forward(wf.metrics) if wf else None
    stress = evidence.stress.passed if evidence.stress else None
    if stage in TRADE_STAGES:
        return StageEvidence(
            performance=_performance(bot, evidence, account), market_data=evidence.trade_proof,
            walk_forward=walk_forward, stress_passed=stress, approval=approval,
            source=f"{len(evidence.trades)} {stage.value} trades")
    run = evidence.gate_backtest
    # Without a backtest there is nothing to score: the gate then reports "no evidence"
    # rather than the few points a bot holds merely for never having been killed.
    score = score_bot(autonomy_inputs(bot, evidence, account, now=now)).score if run else None
    return StageEvidence(
        performance=Performance.from_mapping(run.metrics) if run else None,
        market_data=run.proof if run else None, walk_forward=walk_forward,
        stress_passed=stress, approval=approval, autonomy_score=score,
        recent_backtests=tuple(r.passed for r in evidence.backtests[:3]),
        source=f"backtest {run.id}" if run else "no completed backtest")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _walk_forward(metrics: dict[str, Any]) -> WalkForward:
    ratio = _number(metrics.get("overfit_ratio"))
    in_sample = _number(metrics.get("in_sample_sharpe"))
    out_of_sample = _number(metrics.get("out_of_sample_sharpe"))
    # Only over a positive out-of-sample Sharpe: two negative Sharpes would divide into a
    # small positive ratio that passes the gate.
    if ratio is None and in_sample is not None and out_of_sample is not None \
            and out_of_sample > 0:
        ratio = in_sample / out_of_sample
    return WalkForward(_number(metrics.get("consistency")), ratio)
