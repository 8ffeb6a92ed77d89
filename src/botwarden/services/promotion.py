"""Promotion: evaluate a bot's gates on its evidence (services/evidence.py), apply stage
changes decided by the stage machine (domain/stage_machine.py) in the caller's transaction,
and list what blocks a bot from trading LIVE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from botwarden.domain.errors import DomainError
from botwarden.domain.gates import (
    HUMAN_APPROVAL_GATES,
    GateEvaluation,
    HumanApproval,
    StageEvidence,
    evaluate_gates,
    gate_profile,
)
from botwarden.domain.kill import KillState
from botwarden.domain.stage_machine import (
    Halts,
    Kind,
    Refusal,
    Route,
    Transition,
    decide_transition,
    rank,
)
from botwarden.domain.stages import Stage
from botwarden.services.evidence import load_evidence, stage_evidence
from botwarden.store.models import Account, Bot, BotJob, CircuitBreaker


def evaluate(session: Session, bot: Bot, account: Account, *, now: datetime,
             approval: HumanApproval | None = None) -> tuple[GateEvaluation, StageEvidence]:
    evidence = load_evidence(session, [bot], now=now)[bot.id]
    facts = stage_evidence(bot, evidence, account, now=now, approval=approval)
    return evaluate_gates(Stage(bot.stage), facts, gate_profile(account.gate_profile)), facts


# --- transitions --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageChange:
    transition: Transition
    changed_at: datetime
    canceled_jobs: tuple[str, ...] = ()


def _wants_promotion(current: Stage, route: Route, target: Stage | None) -> bool:
    if current is Stage.RETIRED or route is Route.RETIRE:
        return False
    if route in (Route.GRADUATE, Route.PROMOTE_LIVE):
        return True
    return target is not None and rank(target) > rank(current)


def change_stage(
    session: Session, bot: Bot, account: Account, route: Route, *, now: datetime, actor: str,
    target: Stage | None = None, approval: HumanApproval | None = None,
) -> StageChange:
    """Decide and apply one stage change in the caller's transaction (the caller commits,
    then runs the halt hooks when runners were stopped)."""
    current = Stage(bot.stage)
    evaluation = None
    if _wants_promotion(current, route, target):
        evaluation, _ = evaluate(session, bot, account, now=now, approval=approval)
    halts = Halts(killed=bot.kill_state != KillState.NONE.value,
                  kill_switch_engaged=account.kill_switch_engaged)
    decision = decide_transition(current, route, target, evaluation=evaluation, halts=halts)
    if isinstance(decision, Refusal):
        raise decision.as_error()
    values: dict[str, Any] = {"stage": decision.to_stage.value, "stage_changed_at": now,
                              "updated_at": now}
    if decision.kind is Kind.RETIREMENT:
        values.update(is_trading_enabled=False, retired_at=now)
    # Compare-and-set on the stage read: two concurrent changes cannot both apply.
    done = session.execute(sa.update(Bot).where(Bot.id == bot.id, Bot.stage == current.value)
                           .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise DomainError("STAGE_CONFLICT", "the bot's stage changed while this ran",
                          "Read the bot again and retry.")
    for key, value in values.items():
        set_committed_value(bot, key, value)
    canceled: tuple[str, ...] = ()
    if decision.leaves_the_runner_venue:
        reason = "bot retired" if decision.kind is Kind.RETIREMENT else \
            f"bot demoted {current.value} -> {decision.to_stage.value}"
        canceled = stop_runners(session, bot, actor=actor, now=now, reason=reason)
    return StageChange(decision, now, canceled)


def stop_runners(session: Session, bot: Bot, *, actor: str, now: datetime,
                 reason: str) -> tuple[str, ...]:
    """Cancel the bot's unfinished RUNNER jobs through the job repository (its events are
    written in this transaction); their workers stop at their next heartbeat."""
    from botwarden.store.jobs import cancel_job

    job_ids = session.scalars(
        sa.select(BotJob.id).where(
            BotJob.bot_id == bot.id, BotJob.job_type == "RUNNER",
            BotJob.status.not_in(("COMPLETED", "FAILED", "CANCELED", "TIMEOUT")))
    ).all()
    canceled = []
    for job_id in job_ids:
        try:
            cancel_job(session, job_id, account_id=bot.account_id, actor=actor, now=now,
                       reason=reason)
        except DomainError as exc:
            if exc.code != "JOB_TERMINAL":  # it finished meanwhile: nothing to stop
                raise
            continue
        canceled.append(job_id)
    return tuple(canceled)


# --- live readiness -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blocker:
    code: str
    message: str
    fix: str


def live_readiness(session: Session, bot: Bot, account: Account, *, now: datetime,
                   totp_enabled: bool, broker_configured: bool) -> list[Blocker]:
    """What stands between this bot and trading LIVE, each with a fix. The human approval
    itself (step-up and token) is the last act of promote-live, so it is not a blocker."""
    from botwarden.services.bots import current_limits

    stage = Stage(bot.stage)
    blockers: list[Blocker] = []
    if stage is Stage.RETIRED:
        return [Blocker("BOT_RETIRED", "bot is retired; RETIRED is terminal",
                        "Create a new bot instead.")]
    if stage not in (Stage.CANARY, Stage.LIVE):
        blockers.append(Blocker("STAGE_NOT_ELIGIBLE", f"bot is {stage.value}; only a CANARY bot "
                                "can be promoted to LIVE", "Graduate the bot to CANARY first."))
    elif stage is Stage.CANARY:
        evaluation, _ = evaluate(session, bot, account, now=now)
        failing = evaluation.without(HUMAN_APPROVAL_GATES).failing
        if failing:
            blockers.append(Blocker(
                "GATES_NOT_MET", "gates not met: " + ", ".join(g.id for g in failing),
                "See GET /api/bots/{id}/promotion-evaluation and gather the missing evidence."))
    if not bot.is_trading_enabled:
        blockers.append(Blocker("LIVE_TRADING_DISABLED", "live trading is OFF for this bot",
                                "POST /api/bots/{id}/trading {\"enabled\": true} with a 2FA "
                                "step-up."))
    if bot.kill_state != KillState.NONE.value:
        blockers.append(Blocker("BOT_KILLED", f"bot is {bot.kill_state}",
                                "Resurrect the bot (POST /api/bots/{id}/resurrect)."))
    if account.kill_switch_engaged:
        blockers.append(Blocker("ACCOUNT_KILL_SWITCH_ENGAGED", "the account kill switch is "
                                "engaged", "An admin releases it with a 2FA step-up."))
    if not totp_enabled:
        blockers.append(Blocker("TOTP_NOT_ENABLED", "you have no 2FA: going LIVE needs a "
                                "step-up", "POST /api/2fa/setup, then /api/2fa/verify."))
    if not broker_configured:
        blockers.append(Blocker("INTEGRATION_KEY_MISSING", "broker credentials are missing",
                                "Set BOTWARDEN_TRADOVATE_USERNAME and "
                                "BOTWARDEN_TRADOVATE_PASSWORD and restart."))
    breaker = session.get(CircuitBreaker, bot.id)
    if breaker is not None and breaker.state == "OPEN":
        blockers.append(Blocker("CIRCUIT_OPEN", "the bot's circuit breaker is open",
                                "Find why the runner keeps failing; the breaker half-opens "
                                "after its cool-down."))
    if current_limits(session, bot.id) is None:
        blockers.append(Blocker("NO_LIMIT_CONFIGURED", "the bot has no valid risk config",
                                "PUT /api/bots/{id}/risk-config with every required limit."))
    return blockers
