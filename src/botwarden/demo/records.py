"""What the fleet reads back from the store to know where each bot stands: its research
requests (found again by their exact request body, so a restart never queues one twice),
its runner jobs, and the gate figures it reports."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, defer

from botwarden.api.schemas.research import BacktestIn, ExecutionIn, GridStrategyIn, SweepIn
from botwarden.demo.plan import FleetSlot
from botwarden.domain.gates import GateEvaluation, MarketDataProof
from botwarden.domain.jobs import TERMINAL, JobType
from botwarden.services import research as research_service
from botwarden.services.evidence import SYNTHETIC_DATASETS, SYNTHETIC_PROVIDERS
from botwarden.store.models import BotJob, ResearchRun

_TERMINAL = tuple(s.value for s in TERMINAL)
FIGURES = {"min_trades": "trades", "min_win_rate": "win_rate_pct",
           "min_profit_factor": "profit_factor", "min_expectancy": "expectancy_usd",
           "min_sharpe": "sharpe", "max_drawdown": "max_drawdown_pct",
           "positive_net_pnl": "net_pnl_usd", "min_days": "days"}


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A session whose first transaction takes SQLite's write lock at BEGIN, as the API's
    mutations do: a read-then-write transaction would otherwise fail at once whenever a
    runner committed in between. The caller commits."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        with Session(bind=conn, expire_on_commit=False, autoflush=False) as session:
            yield session


# --- research requests --------------------------------------------------------------------


def sweep_body(slot: FleetSlot, start: datetime, end: datetime, dataset: str) -> SweepIn:
    return SweepIn(strategy=GridStrategyIn(kind=slot.kind,
                                           grid={k: list(v) for k, v in slot.grid.items()}),
                   symbol=slot.symbol, timeframe="1m", start=start, end=end, dataset=dataset,
                   execution=ExecutionIn.model_validate({
                       "stop_loss_ticks": slot.stop_loss_ticks,
                       "profit_target_ticks": slot.profit_target_ticks}),
                   rank_by="expectancy")


def backtest_body(bot_id: str, start: datetime, end: datetime, dataset: str) -> BacktestIn:
    return BacktestIn(bot_id=bot_id, start=start, end=end, dataset=dataset)


@dataclass(frozen=True, slots=True)
class RunState:
    run: ResearchRun
    status: str  # as the API shows it: QUEUED, RUNNING, COMPLETED, FAILED, CANCELED, ...

    @property
    def pending(self) -> bool:
        return self.status in ("QUEUED", "RUNNING")


def find_run(session: Session, account_id: str, kind: str, body: BaseModel,
             bot_id: str | None) -> RunState | None:
    """The newest run of `kind` asked with exactly `body`, with its status."""
    wanted = body.model_dump(mode="json")
    query = sa.select(ResearchRun).where(ResearchRun.account_id == account_id,
                                         ResearchRun.kind == kind)
    query = query.where(ResearchRun.bot_id == bot_id) if bot_id else \
        query.where(ResearchRun.bot_id.is_(None))
    # `result` (trade lists, ranked rows) loads only when a caller reads it.
    query = query.options(defer(ResearchRun.result)).order_by(ResearchRun.created_at.desc())
    for run in session.scalars(query):
        if (run.request or {}).get("body") == wanted:
            job = research_service.jobs_of(session, [run]).get(run.job_id or "")
            return RunState(run, research_service.present(run, job)["status"])
    return None


def run_proof(run: ResearchRun) -> MarketDataProof:
    synthetic = (run.provider or "").lower() in SYNTHETIC_PROVIDERS or \
        (run.dataset or "") in SYNTHETIC_DATASETS
    return MarketDataProof(run.provider, run.dataset, run.range_start, run.range_end, synthetic)


# --- runner jobs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunnerJobs:
    fast_forward: BotJob | None  # the newest job replaying history up to `end`
    live: BotJob | None  # the newest live runner job

    @property
    def active(self) -> BotJob | None:
        for job in (self.fast_forward, self.live):
            if job is not None and job.status not in _TERMINAL:
                return job
        return None


def runner_jobs(session: Session, bot_id: str) -> RunnerJobs:
    jobs: Sequence[BotJob] = session.scalars(
        sa.select(BotJob).where(BotJob.bot_id == bot_id, BotJob.job_type == JobType.RUNNER.value)
        .order_by(BotJob.created_at.desc(), BotJob.id.desc())).all()
    fast = next((j for j in jobs if (j.payload or {}).get("end")), None)
    live = next((j for j in jobs if not (j.payload or {}).get("end")), None)
    return RunnerJobs(fast, live)


def ended(job: BotJob) -> str | None:
    """How a finished runner ended ({"ended": ...} of its result), or its status."""
    if job.status not in _TERMINAL:
        return None
    return str((job.result or {}).get("ended") or job.status)


# --- figures ---------------------------------------------------------------------------------


def figures(evaluation: GateEvaluation) -> dict[str, Any]:
    """The gate figures of an evaluation, named for a report."""
    out: dict[str, Any] = {}
    for gate in evaluation.gates:
        name = FIGURES.get(gate.id)
        if name is not None and gate.actual is not None:
            out[name] = round(gate.actual, 2) if isinstance(gate.actual, float) else gate.actual
    return out


def failing(evaluation: GateEvaluation) -> list[str]:
    return [f"{g.id} ({g.actual} vs {g.required})" for g in evaluation.failing]
