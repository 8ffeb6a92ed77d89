"""The research job handler's contract with the worker: it beats and stops when told, and a
job that is no longer its own writes nothing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from botwarden.clock import utcnow
from botwarden.config import Settings
from botwarden.domain.errors import DomainError
from botwarden.domain.jobs import JobType
from botwarden.research import jobs as research_jobs
from botwarden.research.spec import build_spec
from botwarden.store import jobs as job_store
from botwarden.store.db import write_transaction
from botwarden.store.models import Account, ResearchRun
from botwarden.workers.context import JobContext, LeaseLost
from tests.research.jobs_support import write_synthetic_days


@pytest.fixture
def research_settings(settings: Settings) -> Settings:
    write_synthetic_days(settings.data_dir, days=5)
    return settings.model_copy(update={"research_workers": 1})


def claimed_context(engine: Engine, settings: Settings, kind: str = "SWEEP",
                    options: dict[str, object] | None = None) -> JobContext:
    spec = build_spec(kind="sma_cross", params={"fast": 5, "slow": 20}, symbol="MES",
                      timeframe="1m", cash=Decimal(50_000))
    with Session(engine) as session:
        account = Account(name="research-jobs")
        session.add(account)
        session.flush()
        run = ResearchRun(account_id=account.id, kind=kind, status="QUEUED",
                          strategy_kind=spec.kind, params=spec.params, symbol="MES",
                          timeframe="1m",
                          request={"execution": spec.execution_json(), "range": {},
                                   "options": options or {"grid": {"fast": [3, 5, 8]}}})
        session.add(run)
        session.flush()
        run.job_id = job_store.create_job(session, account_id=account.id,
                                          job_type=JobType.SWEEP if kind == "SWEEP"
                                          else JobType.BACKTEST, actor="test", now=utcnow(),
                                          payload={"run_id": run.id, "kind": kind})
        session.commit()
    with write_transaction(engine) as conn:
        [job] = job_store.claim_jobs(conn, owner="test-worker", types=list(JobType), limit=1,
                                     lease_seconds=60, now=utcnow())
    return JobContext(job, settings, utcnow, "test-worker", engine)


def run_row(engine: Engine, ctx: JobContext) -> ResearchRun:
    with Session(engine) as session:
        run = session.get(ResearchRun, ctx.payload["run_id"])
        assert run is not None
        return run


def test_a_completed_run_carries_its_result_and_provenance(
        engine: Engine, research_settings: Settings) -> None:
    ctx = claimed_context(engine, research_settings)
    fractions: list[float] = []
    original = ctx.progress
    ctx.progress = lambda f: (fractions.append(f), original(f))[1]  # type: ignore[method-assign]
    answer = research_jobs.handle(ctx)
    run = run_row(engine, ctx)
    assert answer == {"run_id": run.id, "kind": "SWEEP", "passed": None, "evidence_runs": 0}
    assert run.status == "COMPLETED" and run.completed_at is not None
    assert run.dataset == "SYNTH" and run.data_hash and run.range_start < run.range_end
    assert len(run.result["results"]) == 3 and fractions[-1] == 1.0


def test_a_job_taken_away_writes_nothing(engine: Engine, research_settings: Settings) -> None:
    ctx = claimed_context(engine, research_settings)
    with write_transaction(engine) as conn:
        job_store.cancel_job(conn, ctx.job_id, account_id=None, actor="test", now=utcnow())
    with pytest.raises(LeaseLost):
        research_jobs.handle(ctx)
    run = run_row(engine, ctx)
    assert run.status == "QUEUED" and run.result is None


def test_a_stopping_worker_stops_the_computation(
        engine: Engine, research_settings: Settings) -> None:
    ctx = claimed_context(engine, research_settings, options={"windows": {"count": 3,
                                                                          "days": 1}})
    ctx.request_shutdown()
    with pytest.raises(LeaseLost):
        research_jobs.handle(ctx)
    assert run_row(engine, ctx).status == "RUNNING"  # the worker hands the job back


def test_a_refusal_fails_the_run_with_its_code(engine: Engine, research_settings: Settings,
                                               tmp_path: Path) -> None:
    empty = research_settings.model_copy(update={"data_dir": tmp_path / "nothing"})
    ctx = claimed_context(engine, empty, kind="BACKTEST", options={})
    with pytest.raises(DomainError) as refused:
        research_jobs.handle(ctx)
    run = run_row(engine, ctx)
    assert refused.value.code == "NO_DATA"
    assert run.status == "FAILED" and run.error.startswith("NO_DATA")


def test_a_crash_before_the_last_attempt_leaves_the_run_to_the_retry(
        engine: Engine, research_settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = claimed_context(engine, research_settings)

    def explode(*_: object) -> None:
        raise RuntimeError("worker bug")

    monkeypatch.setitem(research_jobs.COMPUTE, "SWEEP", explode)
    with pytest.raises(RuntimeError):
        research_jobs.handle(ctx)
    run = run_row(engine, ctx)
    assert run.status == "QUEUED" and "worker bug" in run.error
