"""Research runs: create a run and its job in the caller's transaction, and read them back,
always within the caller's account (another account's run reads as missing).

A run is resolved when it is created (research.spec): a bot's run snapshots the bot's
strategy, parameters, symbol, timeframe and risk config, so the job computes what was
asked even if the bot changes while it waits. The job (research.jobs) fills in the
provenance, metrics and result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from botwarden.domain.errors import DomainError, InvalidRequest, NotFound
from botwarden.domain.jobs import TERMINAL, JobStatus
from botwarden.domain.research import RUN_KIND_JOB_TYPE
from botwarden.ids import new_id
from botwarden.research.catalogue import validate_params
from botwarden.research.spec import RunSpec, build_spec
from botwarden.store import jobs as job_store
from botwarden.store.models import Account, Bot, BotJob, EvolutionIndividual, ResearchRun

FINISHED_RUN = ("COMPLETED", "FAILED")


def _target(session: Session, account: Account, body: Any) -> tuple[Bot | None, RunSpec]:
    """The bot (when named) and the spec of the run `body` asks for."""
    from botwarden.services.bots import current_limits

    strategy = getattr(body, "strategy", None)
    execution = body.execution
    bot = None
    if body.bot_id is not None:
        bot = session.get(Bot, body.bot_id)
        if bot is None or bot.account_id != account.id:
            raise NotFound("bot")
        named = strategy.kind if strategy is not None else None
        if (strategy is not None and strategy.params) or named not in (None, bot.strategy_kind):
            raise InvalidRequest("a bot's run uses the bot's own strategy and parameters",
                                 "Leave strategy.kind and strategy.params out; vary "
                                 "parameters with a grid.")
        for name in ("symbol", "timeframe"):
            given = getattr(body, name, None)
            if given is not None and given != getattr(bot, name):
                raise InvalidRequest(f"a bot's run uses the bot's {name}",
                                     f"Leave {name} out, or use strategy instead of bot_id.")
        kind, params = bot.strategy_kind, dict(bot.strategy_params or {})
        symbol, timeframe, limits = bot.symbol, bot.timeframe, current_limits(session, bot.id)
    else:
        if strategy is None or strategy.kind is None:
            raise InvalidRequest("give bot_id, or strategy.kind with its parameters",
                                 "See GET /api/strategies for the kinds.")
        kind, params = strategy.kind, strategy.params
        symbol, timeframe, limits = body.symbol or "MES", body.timeframe or "1m", None
    params = validate_params(kind, params)
    start, end = body.start, body.end
    if start is not None and end is not None and start >= end:
        raise InvalidRequest("start must be before end")
    spec = build_spec(
        kind=kind, params=params, symbol=symbol, timeframe=timeframe,
        cash=account.starting_capital, limits=limits, size=execution.size,
        slippage_ticks=execution.slippage_ticks,
        commission_per_side=execution.commission_per_side,
        flatten_minutes=execution.flatten_before_close_minutes,
        stop_loss_ticks=execution.stop_loss_ticks,
        profit_target_ticks=execution.profit_target_ticks,
        drawdown_limit_pct=getattr(body, "max_drawdown_pct", None),
        start=start, end=end, dataset=body.dataset)
    return bot, spec


def _options(kind: str, spec: RunSpec, body: Any) -> dict[str, Any]:
    """The kind's own settings, validated now so that a bad request fails here, not later
    in a worker."""
    grid = getattr(getattr(body, "strategy", None), "grid", None)
    if grid:
        from botwarden.research.sweep import expand_grid

        expand_grid(spec.kind, spec.params, grid)
    if kind == "SWEEP":
        windows = body.windows.model_dump() if body.windows else None
        if grid and windows:
            raise InvalidRequest("a sweep is over a grid or over rolling windows, not both")
        return {"grid": grid, "windows": windows, "rank_by": body.rank_by}
    if kind == "WALK_FORWARD":
        return {"grid": grid, "train_days": body.train_days, "test_days": body.test_days,
                "step_days": body.step_days}
    if kind == "STRESS":
        return {"paths": body.paths, "seed": body.seed}
    if kind == "EVOLUTION":
        from botwarden.research.evolution import search_space

        space = {k: tuple(v) for k, v in (body.space or {}).items()} or None
        if not search_space(spec.kind, spec.params, space):
            raise InvalidRequest(f"{spec.kind} {spec.params} leaves nothing to evolve",
                                 "Give a search space: {param: [low, high]}.")
        return {"generations": body.generations, "population": body.population,
                "seed": body.seed, "test_fraction": body.test_fraction, "space": space}
    return {}


def create_run(session: Session, account: Account, kind: str, body: Any, *, actor: str,
               now: datetime, trace_id: str | None) -> ResearchRun:
    """The run and its queued job, in the caller's transaction (the caller commits)."""
    bot, spec = _target(session, account, body)
    options = _options(kind, spec, body)
    run = ResearchRun(
        id=new_id(), account_id=account.id, bot_id=bot.id if bot else None, kind=kind,
        status="QUEUED", strategy_kind=spec.kind, params=spec.params, symbol=spec.symbol,
        timeframe=spec.timeframe, created_at=now,
        request={"body": body.model_dump(mode="json"), "execution": spec.execution_json(),
                 "range": spec.range_json(), "options": options})
    session.add(run)
    session.flush()
    run.job_id = job_store.create_job(
        session, account_id=account.id, job_type=RUN_KIND_JOB_TYPE[kind], actor=actor, now=now,
        bot_id=run.bot_id, payload={"run_id": run.id, "kind": kind}, trace_id=trace_id)
    session.flush()
    return run


# --- reads ----------------------------------------------------------------------------------


def get_run(session: Session, account_id: str, run_id: str,
            kinds: Iterable[str] | None = None) -> ResearchRun:
    run = session.get(ResearchRun, run_id)
    if run is None or run.account_id != account_id or (kinds is not None and
                                                        run.kind not in set(kinds)):
        raise NotFound("research run")
    return run


def list_runs(session: Session, account_id: str, *, kinds: Iterable[str] | None = None,
              bot_id: str | None = None, limit: int = 50, offset: int = 0) -> list[ResearchRun]:
    query = sa.select(ResearchRun).where(ResearchRun.account_id == account_id)
    if kinds is not None:
        query = query.where(ResearchRun.kind.in_(list(kinds)))
    if bot_id is not None:
        query = query.where(ResearchRun.bot_id == bot_id)
    # `result` can be large (trade lists, ranked sweeps): listings leave it unloaded.
    query = query.options(defer(ResearchRun.result))
    return list(session.scalars(query.order_by(ResearchRun.created_at.desc(),
                                               ResearchRun.id.desc())
                                .limit(limit).offset(offset)).all())


def jobs_of(session: Session, runs: Sequence[ResearchRun]) -> dict[str, BotJob]:
    ids = [r.job_id for r in runs if r.job_id]
    if not ids:
        return {}
    return {j.id: j for j in session.scalars(sa.select(BotJob).where(BotJob.id.in_(ids))).all()}


def present(run: ResearchRun, job: BotJob | None) -> dict[str, Any]:
    """A run as the API shows it. A run whose job ended without finishing it (cancelled,
    timed out, failed for good) shows the job's status and reason."""
    status, error = run.status, run.error
    if job is not None and JobStatus(job.status) in TERMINAL and status not in FINISHED_RUN:
        status = job.status
        error = error or f"{job.status_reason_code}: {job.status_reason}"
    elif job is not None and job.status == JobStatus.QUEUED.value and status == "RUNNING":
        status = "QUEUED"  # its worker let it go (shutdown, lost lease): it waits for another
    return {
        "id": run.id, "kind": run.kind, "status": status, "job_id": run.job_id,
        "job_status": job.status if job else None, "bot_id": run.bot_id,
        "strategy": {"kind": run.strategy_kind, "params": run.params},
        "symbol": run.symbol, "timeframe": run.timeframe,
        "provenance": {"provider": run.provider, "dataset": run.dataset,
                       "range_start": run.range_start, "range_end": run.range_end,
                       "data_hash": run.data_hash},
        "metrics": run.metrics, "passed": run.passed, "error": error,
        "created_at": run.created_at, "completed_at": run.completed_at,
    }


def detail(run: ResearchRun, job: BotJob | None) -> dict[str, Any]:
    out = present(run, job)
    result = run.result or {}
    out.update(request=run.request, result=run.result)
    if run.kind == "BACKTEST":
        out.update(trades=result.get("trades"), equity=result.get("equity"))
    elif run.kind in ("SWEEP", "WALK_FORWARD"):
        out.update(results=result.get("results") or result.get("windows"))
    elif run.kind == "MATRIX":
        out.update(cells=result.get("cells"), consistency=result.get("consistency"))
    return out


def individuals(session: Session, run_ids: Sequence[str]) -> list[EvolutionIndividual]:
    if not run_ids:
        return []
    return list(session.scalars(
        sa.select(EvolutionIndividual).where(EvolutionIndividual.run_id.in_(list(run_ids)))
        .order_by(EvolutionIndividual.generation, EvolutionIndividual.trial_number)).all())


def generations(rows: Sequence[EvolutionIndividual]) -> list[dict[str, Any]]:
    """Individuals grouped by generation, with each generation's fitness and parents."""
    grouped: dict[int, list[EvolutionIndividual]] = {}
    for row in rows:
        grouped.setdefault(row.generation, []).append(row)
    out = []
    for generation, members in sorted(grouped.items()):
        fitness = [m.fitness for m in members]
        out.append({
            "generation": generation,
            "individuals": [{"trial_number": m.trial_number, "generation": m.generation,
                             "params": m.params, "fitness": m.fitness, "metrics": m.metrics,
                             "parents": m.parents} for m in members],
            "best_fitness": max(fitness), "mean_fitness": sum(fitness) / len(fitness),
            "parents": members[0].parents,
        })
    return out


def population_summary(run: ResearchRun, job: BotJob | None,
                       rows: Sequence[EvolutionIndividual]) -> dict[str, Any]:
    out = present(run, job)
    out.update(generations_done=len({r.generation for r in rows}),
               best_fitness=max((r.fitness for r in rows), default=None))
    return out


def refuse_unknown_kind(kind: str | None) -> list[str] | None:
    if kind is None:
        return None
    if kind not in RUN_KIND_JOB_TYPE:
        raise DomainError("INVALID_REQUEST", f"unknown research kind {kind!r}",
                          f"Use one of {', '.join(RUN_KIND_JOB_TYPE)}.", status=422)
    return [kind]
