"""The stage machine (domain.md, "Bot lifecycle stages"): which stage changes are allowed,
through which route, and why not. Pure: facts in, a transition or a typed refusal out.

- Promotion moves exactly one step up the ladder and needs every gate of the stage being
  left; a killed bot, or one under the account kill switch, is not promoted.
- Demotion is free and may skip steps (any stage -> any lower stage, TRIALS included).
- LIVE is reached only through promote-live, from CANARY.
- Any stage may retire; RETIRED is terminal: nothing leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from botwarden.domain.errors import DomainError
from botwarden.domain.gates import GateEvaluation, GateResult
from botwarden.domain.stages import LADDER, REAL_MONEY_STAGES, Stage, next_stage


class Route(StrEnum):
    """How a change was asked for; each route may make only some changes."""

    STAGE_PATCH = "STAGE_PATCH"  # PATCH /stage: one step up (gated) or any step down
    GRADUATE = "GRADUATE"  # one step up, never into LIVE
    PROMOTE_LIVE = "PROMOTE_LIVE"  # CANARY -> LIVE only
    RETIRE = "RETIRE"  # any stage -> RETIRED


class Kind(StrEnum):
    PROMOTION = "PROMOTION"
    DEMOTION = "DEMOTION"
    RETIREMENT = "RETIREMENT"


class RefusalCode(StrEnum):
    STAGE_UNCHANGED = "STAGE_UNCHANGED"
    STAGE_TERMINAL = "STAGE_TERMINAL"
    STAGE_SKIP = "STAGE_SKIP"
    STAGE_NOT_ELIGIBLE = "STAGE_NOT_ELIGIBLE"
    USE_PROMOTE_LIVE = "USE_PROMOTE_LIVE"
    USE_RETIRE = "USE_RETIRE"
    BOT_KILLED = "BOT_KILLED"
    ACCOUNT_KILL_SWITCH_ENGAGED = "ACCOUNT_KILL_SWITCH_ENGAGED"
    GATES_NOT_MET = "GATES_NOT_MET"


@dataclass(frozen=True, slots=True)
class Transition:
    from_stage: Stage
    to_stage: Stage
    kind: Kind

    @property
    def leaves_the_runner_venue(self) -> bool:
        """A demotion out of real money to simulation, or to TRIALS (no runner at all): the
        bot's runners stop and its real position is flattened, as on retirement."""
        if self.kind is Kind.RETIREMENT:
            return True
        if self.kind is not Kind.DEMOTION:
            return False
        return self.to_stage is Stage.TRIALS or (
            self.from_stage in REAL_MONEY_STAGES and self.to_stage not in REAL_MONEY_STAGES)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode
    message: str
    fix: str
    failing_gates: tuple[GateResult, ...] = ()

    def as_error(self) -> DomainError:
        details = {"gates": [g.as_dict() for g in self.failing_gates]} if self.failing_gates \
            else None
        return DomainError(self.code.value, self.message, self.fix, status=409, details=details)


def rank(stage: Stage) -> int:
    """Position on the ladder; RETIRED is off the ladder (-1)."""
    return LADDER.index(stage) if stage in LADDER else -1


@dataclass(frozen=True, slots=True)
class Halts:
    killed: bool = False
    kill_switch_engaged: bool = False


def decide_transition(
    current: Stage,
    route: Route,
    target: Stage | None = None,
    *,
    evaluation: GateEvaluation | None = None,
    halts: Halts = Halts(),
) -> Transition | Refusal:
    """Decide one stage change. `target` is needed for STAGE_PATCH only (the other routes
    imply it). A promotion needs `evaluation` for `current`, with every gate met; without one
    it is refused (fail closed)."""
    if current is Stage.RETIRED:
        return Refusal(RefusalCode.STAGE_TERMINAL, "bot is retired; RETIRED is terminal",
                       "Create a new bot instead.")
    implied = _route_target(current, route, target)
    if isinstance(implied, Refusal):
        return implied
    if implied is Stage.RETIRED:
        return Transition(current, implied, Kind.RETIREMENT)
    if rank(implied) < rank(current):
        return Transition(current, implied, Kind.DEMOTION)
    return _promotion(current, implied, evaluation, halts)


def _route_target(current: Stage, route: Route, target: Stage | None) -> Stage | Refusal:
    if route is Route.RETIRE:
        return Stage.RETIRED
    if route is Route.PROMOTE_LIVE:
        if current is not Stage.CANARY:
            return Refusal(RefusalCode.STAGE_NOT_ELIGIBLE,
                           f"only a CANARY bot can be promoted to LIVE; this one is {current}",
                           "Graduate the bot to CANARY first.")
        return Stage.LIVE
    if route is Route.GRADUATE:
        following = next_stage(current)
        if following is None or following is Stage.LIVE:
            return Refusal(RefusalCode.STAGE_NOT_ELIGIBLE, f"graduate cannot leave {current}",
                           "CANARY -> LIVE goes through POST /api/bots/{id}/promote-live.")
        return following
    if target is None:
        return Refusal(RefusalCode.STAGE_NOT_ELIGIBLE, "no target stage given",
                       "Send {\"stage\": \"...\"}.")
    if target is current:
        return Refusal(RefusalCode.STAGE_UNCHANGED, f"bot is already {current}",
                       "Nothing to do.")
    if target is Stage.RETIRED:
        return Refusal(RefusalCode.USE_RETIRE, "retirement has its own route",
                       "POST /api/bots/{id}/retire (it also stops runners and flattens).")
    if target is Stage.LIVE:
        return Refusal(RefusalCode.USE_PROMOTE_LIVE,
                       "LIVE is reached only with a human approval",
                       "Issue an approval (POST /api/bots/{id}/approvals, 2FA step-up), then "
                       "POST /api/bots/{id}/promote-live with its token.")
    if rank(target) > rank(current) + 1:
        return Refusal(RefusalCode.STAGE_SKIP,
                       f"{current} -> {target} skips a stage; promotion moves one step",
                       f"Promote to {next_stage(current)} first.")
    return target


def _promotion(current: Stage, target: Stage, evaluation: GateEvaluation | None,
               halts: Halts) -> Transition | Refusal:
    if halts.kill_switch_engaged:
        return Refusal(RefusalCode.ACCOUNT_KILL_SWITCH_ENGAGED,
                       "the account kill switch is engaged; no bot is promoted",
                       "An admin must release the kill switch (with a 2FA step-up) first.")
    if halts.killed:
        return Refusal(RefusalCode.BOT_KILLED, "a killed bot is not promoted",
                       "Resurrect the bot (POST /api/bots/{id}/resurrect) first.")
    if evaluation is None or evaluation.stage is not current or evaluation.next_stage is not \
            target:
        return Refusal(RefusalCode.GATES_NOT_MET, "no gate evaluation for this promotion",
                       "Read GET /api/bots/{id}/promotion-evaluation.")
    if not evaluation.eligible:
        failing = evaluation.failing
        names = ", ".join(g.id for g in failing) or "no gates"
        return Refusal(RefusalCode.GATES_NOT_MET,
                       f"{current} -> {target}: gates not met: {names}",
                       "Gather the missing evidence (see the failing gates), then retry.",
                       failing)
    return Transition(current, target, Kind.PROMOTION)
