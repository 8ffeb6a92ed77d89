"""Research routes (api.md, "Research"): the strategy catalogue, and backtests, sweeps,
matrices, walk-forward analyses, stress tests and evolution runs as jobs.

Every POST creates a research run and its queued job in one transaction with its audit
row and answers 202 `{id, job_id}`; the GET of the id shows the status and, once done, the
result. Walk-forward and stress routes are not named by api.md; they follow the same
pattern (`/api/walk-forward`, `/api/stress-test`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from botwarden.api.deps import Principal, current_principal, get_session
from botwarden.api.guard import Guarded, guard
from botwarden.api.schemas.research import (
    Accepted,
    BacktestIn,
    EvolutionIn,
    MatrixIn,
    PopulationDetail,
    PopulationOut,
    RunDetail,
    RunOut,
    StressIn,
    SweepIn,
    WalkForwardIn,
)
from botwarden.clock import utcnow
from botwarden.policy import Action
from botwarden.research.catalogue import describe
from botwarden.services import research as service

MAX_OFFSET = 1_000_000_000  # past any real listing, within every database's integers
OFFSET = Query(0, ge=0, le=MAX_OFFSET)

router = APIRouter(tags=["research"])
LIMIT = Query(50, ge=1, le=500)


def _accept(ctx: Guarded, kind: str, body: Any) -> Accepted:
    assert ctx.principal is not None and ctx.account is not None
    run = service.create_run(ctx.session, ctx.account, kind, body, actor=ctx.actor_label,
                             now=utcnow(), trace_id=ctx.trace_id)
    ctx.audit.target_type = "research_run"
    ctx.audit.target_id = run.id
    ctx.commit()
    assert run.job_id is not None
    return Accepted(id=run.id, job_id=run.job_id, kind=kind, status=run.status)


def _list(session: Session, principal: Principal, kinds: list[str] | None,
          bot_id: str | None, limit: int, offset: int) -> list[RunOut]:
    runs = service.list_runs(session, principal.account_id, kinds=kinds, bot_id=bot_id,
                             limit=limit, offset=offset)
    jobs = service.jobs_of(session, runs)
    return [RunOut(**service.present(r, jobs.get(r.job_id or ""))) for r in runs]


def _one(session: Session, principal: Principal, run_id: str,
         kinds: list[str] | None) -> RunDetail:
    run = service.get_run(session, principal.account_id, run_id, kinds)
    job = service.jobs_of(session, [run]).get(run.job_id or "")
    return RunDetail(**service.detail(run, job))


@router.get("/api/strategies")
def strategies(principal: Principal = Depends(current_principal)) -> list[dict[str, Any]]:
    """Every strategy kind with its parameter schema (bounds and defaults)."""
    return describe()


@router.get("/api/research/runs", response_model=list[RunOut])
def research_runs(
    bot_id: str | None = None, kind: str | None = None, limit: int = LIMIT,
    offset: int = OFFSET, principal: Principal = Depends(current_principal),
    session: Session = Depends(get_session),
) -> list[RunOut]:
    """Research runs of this account, newest first; `kind` is one of BACKTEST, SWEEP,
    MATRIX, WALK_FORWARD, STRESS, EVOLUTION."""
    return _list(session, principal, service.refuse_unknown_kind(kind), bot_id, limit, offset)


@router.get("/api/research/runs/{run_id}", response_model=RunDetail)
def research_run(run_id: str, principal: Principal = Depends(current_principal),
                 session: Session = Depends(get_session)) -> RunDetail:
    return _one(session, principal, run_id, None)


def _routes(path: str, kind: str, body_model: type[Any], summary: str) -> None:
    """POST (create), GET (list) and GET /{run_id} (one) of one research kind."""

    def create(body: Any, ctx: Guarded = Depends(guard(Action.RESEARCH_RUN))) -> Accepted:
        return _accept(ctx, kind, body)

    create.__annotations__["body"] = body_model  # the kind's own body schema

    def listing(bot_id: str | None = None, limit: int = LIMIT, offset: int = OFFSET,
                principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> list[RunOut]:
        return _list(session, principal, [kind], bot_id, limit, offset)

    def one(run_id: str, principal: Principal = Depends(current_principal),
            session: Session = Depends(get_session)) -> RunDetail:
        return _one(session, principal, run_id, [kind])

    name = kind.lower()
    router.add_api_route(path, create, methods=["POST"], status_code=202,
                         response_model=Accepted, summary=f"Queue {summary}",
                         operation_id=f"create_{name}")
    router.add_api_route(path, listing, methods=["GET"], response_model=list[RunOut],
                         summary=f"List {summary}s", operation_id=f"list_{name}")
    router.add_api_route(f"{path}/{{run_id}}", one, methods=["GET"], response_model=RunDetail,
                         summary=f"One {summary}", operation_id=f"get_{name}")


_routes("/api/strategy-lab/backtests", "BACKTEST", BacktestIn, "a backtest")
_routes("/api/backtest-sweep", "SWEEP", SweepIn, "a sweep")
_routes("/api/backtest-matrix", "MATRIX", MatrixIn, "a 6-cell matrix")
_routes("/api/walk-forward", "WALK_FORWARD", WalkForwardIn, "a walk-forward analysis")
_routes("/api/stress-test", "STRESS", StressIn, "a stress test")


@router.post("/api/evolution/trigger", status_code=202, response_model=Accepted)
def evolution_trigger(
    body: EvolutionIn,
    ctx: Guarded = Depends(guard(Action.EVOLUTION_TRIGGER, bot_from="body")),
) -> Accepted:
    """Evolve the bot's strategy parameters (Optuna NSGA-II); see /api/genetics."""
    return _accept(ctx, "EVOLUTION", body)


@router.get("/api/genetics/populations", response_model=list[PopulationOut])
def populations(bot_id: str | None = None, limit: int = LIMIT, offset: int = OFFSET,
                principal: Principal = Depends(current_principal),
                session: Session = Depends(get_session)) -> list[PopulationOut]:
    runs = service.list_runs(session, principal.account_id, kinds=["EVOLUTION"], bot_id=bot_id,
                             limit=limit, offset=offset)
    jobs = service.jobs_of(session, runs)
    rows = service.individuals(session, [r.id for r in runs])
    return [PopulationOut(**service.population_summary(
        r, jobs.get(r.job_id or ""), [x for x in rows if x.run_id == r.id])) for r in runs]


@router.get("/api/genetics/populations/{run_id}", response_model=PopulationDetail)
def population(run_id: str, principal: Principal = Depends(current_principal),
               session: Session = Depends(get_session)) -> PopulationDetail:
    """Generations with each individual's parameters, out-of-sample fitness, metrics and
    parents (lineage), and the run's settings and champion in `result`."""
    run = service.get_run(session, principal.account_id, run_id, ["EVOLUTION"])
    job = service.jobs_of(session, [run]).get(run.job_id or "")
    rows = service.individuals(session, [run.id])
    out = service.population_summary(run, job, rows)
    out.update(request=run.request, result=run.result, generations=service.generations(rows))
    return PopulationDetail(**out)
