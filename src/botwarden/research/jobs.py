"""Worker handlers of the research jobs: each runs one research_runs row, queued with it.

Job types and the run kinds they carry (domain.md names no job type of its own for
walk-forward or stress): BACKTEST runs BACKTEST and STRESS runs (a few backtests each),
SWEEP runs SWEEP and WALK_FORWARD runs (many backtests over windows or a grid), MATRIX runs
MATRIX, EVOLVE runs EVOLUTION. The job's payload names the run: {"run_id", "kind"}.

A handler marks the run RUNNING, computes it (research.run_kinds) through the executor of
the settings (process pool, Dask, or in-process), beating the job's heartbeat and giving up
when the job is taken away or the worker stops, and writes the outcome in one transaction
that first checks the job's lease is still its own (a fenced write: a cancelled or
timed-out job writes nothing). A refusal (DomainError: no data, bad range) fails the run
and the job with its reason code; any other error leaves the run for the job's retry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobType
from botwarden.domain.research import RUN_KIND_JOB_TYPE
from botwarden.research.executors import make_executor
from botwarden.research.run_kinds import COMPUTE, Outcome, RunRecord
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Account, EvolutionIndividual, ResearchRun
from botwarden.workers.context import JobContext, LeaseLost
from botwarden.workers.registry import register_handler


@contextmanager
def fenced(ctx: JobContext) -> Iterator[Session]:
    """A write transaction that goes ahead only while the job's lease is still ours."""
    with write_transaction(ctx.engine) as conn:
        if not job_store.holds_lease(conn, ctx.job.lease):
            ctx.lose_lease()
            raise LeaseLost(ctx.job_id)
        with Session(bind=conn) as session:
            yield session
            session.flush()


def checker(ctx: JobContext) -> Callable[[], None]:
    """Called by the research code at least once a second: a heartbeat, and a way out."""

    def check() -> None:
        ctx.heartbeat()  # raises LeaseLost once the job is no longer ours
        if ctx.should_stop:  # the worker is stopping: it releases the job for another
            raise LeaseLost(ctx.job_id)

    return check


def _start(ctx: JobContext) -> RunRecord:
    run_id = ctx.payload.get("run_id")
    with fenced(ctx) as session:
        run = session.get(ResearchRun, run_id) if isinstance(run_id, str) else None
        if run is None or RUN_KIND_JOB_TYPE.get(run.kind) is not ctx.job_type:
            raise DomainError("RUN_NOT_FOUND", f"no {ctx.job_type} research run {run_id!r}",
                              "Create research through the research routes.")
        account = session.get(Account, run.account_id)
        assert account is not None
        session.execute(sa.delete(EvolutionIndividual)
                        .where(EvolutionIndividual.run_id == run.id))  # a retry starts over
        run.status, run.error, run.completed_at = "RUNNING", None, None
        return RunRecord.of(run, account.gate_profile)


def _finish(ctx: JobContext, record: RunRecord, outcome: Outcome) -> None:
    now = ctx.clock()
    with fenced(ctx) as session:
        run = session.get(ResearchRun, record.id)
        assert run is not None
        p = outcome.provenance
        run.provider, run.dataset, run.data_hash = p.provider, p.dataset, p.data_hash
        run.range_start, run.range_end = p.range_start, p.range_end
        run.metrics, run.result, run.passed = outcome.metrics, outcome.result, outcome.passed
        run.status, run.completed_at = "COMPLETED", now
        for evidence in outcome.evidence:
            session.add(ResearchRun(
                account_id=run.account_id, bot_id=run.bot_id, job_id=ctx.job_id,
                kind="BACKTEST", status="COMPLETED", strategy_kind=run.strategy_kind,
                params=evidence.params, symbol=run.symbol, timeframe=run.timeframe,
                request={"source": {"run_id": run.id, "kind": run.kind, "role": evidence.role},
                         "execution": run.request.get("execution")},
                provider=evidence.provenance.provider, dataset=evidence.provenance.dataset,
                range_start=evidence.provenance.range_start,
                range_end=evidence.provenance.range_end,
                data_hash=evidence.provenance.data_hash, metrics=evidence.metrics,
                result=evidence.result, passed=evidence.passed, created_at=now,
                completed_at=now))


def _fail(ctx: JobContext, record: RunRecord, message: str, *, final: bool) -> None:
    try:
        with fenced(ctx) as session:
            run = session.get(ResearchRun, record.id)
            if run is not None:
                run.error = message
                run.status = "FAILED" if final else "QUEUED"  # QUEUED: the job retries it
                run.completed_at = ctx.clock() if final else None
    except LeaseLost:
        pass  # the job was taken away: whoever has it now owns the run's status


def _store_generation(ctx: JobContext, run_id: str) -> Callable[[int, list[dict[str, Any]]], None]:
    def store(generation: int, individuals: list[dict[str, Any]]) -> None:
        with fenced(ctx) as session:
            session.add_all(EvolutionIndividual(
                run_id=run_id, generation=i["generation"], trial_number=i["trial_number"],
                params=i["params"], fitness=i["fitness"], parents=i["parents"],
                metrics={"valid": i["valid"], "train_fitness": i["train_fitness"],
                         "train": i["train"], "test": i["test"]})
                for i in individuals)

    return store


def handle(ctx: JobContext) -> dict[str, Any]:
    record = _start(ctx)
    executor = make_executor(ctx.settings)
    hooks = {"check": checker(ctx), "progress": ctx.progress,
             "on_generation": _store_generation(ctx, record.id)}
    try:
        outcome = COMPUTE[record.kind](record, ctx.settings.data_dir, executor, hooks)
    except LeaseLost:
        raise
    except DomainError as exc:
        _fail(ctx, record, f"{exc.code}: {exc.message}", final=True)
        raise
    except Exception as exc:
        _fail(ctx, record, repr(exc), final=ctx.attempt >= ctx.job.max_attempts)
        raise
    _finish(ctx, record, outcome)
    return {"run_id": record.id, "kind": record.kind, "passed": outcome.passed,
            "evidence_runs": len(outcome.evidence)}


for _job_type in (JobType.BACKTEST, JobType.SWEEP, JobType.MATRIX, JobType.EVOLVE):
    register_handler(_job_type, handle, replace=True)
