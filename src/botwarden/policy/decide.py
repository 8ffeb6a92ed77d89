"""The pure policy decision. Facts in, decision out; fail closed on anything missing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botwarden.domain.kill import KillState
from botwarden.domain.stages import REAL_MONEY_STAGES, RUNNER_STAGES, Stage, next_stage
from botwarden.domain.trading import Role
from botwarden.policy.actions import ROLE_RANK, SPECS, Action, Target


@dataclass(frozen=True, slots=True)
class ActorFacts:
    user_id: str
    account_id: str
    role: Role
    step_up_until: datetime | None


@dataclass(frozen=True, slots=True)
class AccountFacts:
    account_id: str
    kill_switch_engaged: bool


@dataclass(frozen=True, slots=True)
class BotFacts:
    bot_id: str
    account_id: str
    stage: Stage
    kill_state: KillState
    is_trading_enabled: bool


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason_code: str
    message: str
    fix: str = ""
    status: int = 200
    checks: tuple[str, ...] = field(default=())

    @property
    def http_status(self) -> int:
        return 200 if self.allowed else self.status


def _deny(code: str, message: str, fix: str, status: int, checks: list[str]) -> Decision:
    return Decision(False, code, message, fix, status, tuple(checks))


def decide(
    action: str,
    actor: ActorFacts | None,
    *,
    account: AccountFacts | None = None,
    bot: BotFacts | None = None,
    params: Mapping[str, Any] | None = None,
    now: datetime,
) -> Decision:
    """Decide one action. Order of checks: action known, authenticated, role, target exists
    in the caller's account, kill switch, kill state, retirement, stage eligibility, step-up,
    live-trading flag. The first failing check decides."""
    params = params or {}
    checks: list[str] = []
    try:
        act = Action(action)
    except ValueError:
        return _deny("UNKNOWN_ACTION", f"unknown action {action!r}",
                     "Use one of the actions listed in the API documentation.", 422, checks)
    spec = SPECS[act]
    checks.append("action")
    if spec.min_role is None:
        return Decision(True, "ALLOWED", "public action", checks=tuple(checks))
    if actor is None:
        return _deny("UNAUTHENTICATED", "no authenticated user",
                     "Log in and send 'Authorization: Bearer <token>'.", 401, checks)
    checks.append("authenticated")
    if ROLE_RANK[actor.role] < ROLE_RANK[spec.min_role]:
        return _deny("ROLE_FORBIDDEN",
                     f"{act.value} needs role {spec.min_role.value}; you are {actor.role.value}",
                     "Ask an admin of your account to grant you the needed role.", 403, checks)
    checks.append("role")
    if spec.target is Target.BOT and (bot is None or bot.account_id != actor.account_id):
        return _deny("NOT_FOUND", "bot not found", "Check the bot id.", 404, checks)
    checks.append("ownership")
    step_up = actor.step_up_until is not None and actor.step_up_until > now

    if account is not None and account.kill_switch_engaged and spec.adds_risk:
        return _deny("ACCOUNT_KILL_SWITCH_ENGAGED", "the account kill switch is engaged",
                     "An admin must release the kill switch (with a 2FA step-up) first.",
                     409, checks)
    checks.append("kill_switch")
    if bot is not None:
        denial = _bot_rules(act, bot, params, step_up, checks)
        if denial is not None:
            return denial
    if spec.always_step_up and not step_up:
        return _step_up_denial(checks)
    checks.append("step_up")
    return Decision(True, "ALLOWED", f"{act.value} allowed", checks=tuple(checks))


def _step_up_denial(checks: list[str]) -> Decision:
    return _deny("STEP_UP_REQUIRED", "this action needs a 2FA step-up within the last 5 minutes",
                 "POST /api/2fa/verify with a current TOTP code, then retry.", 403, checks)


def _bot_rules(
    act: Action, bot: BotFacts, params: Mapping[str, Any], step_up: bool, checks: list[str]
) -> Decision | None:
    spec = SPECS[act]
    killed = bot.kill_state is not KillState.NONE
    if act is Action.KILL and killed:
        return _deny("ALREADY_KILLED", f"bot is already {bot.kill_state.value}",
                     "Nothing to do; resurrect it first to kill it anew.", 409, checks)
    if act is Action.RESURRECT and not killed:
        return _deny("NOT_KILLED", "bot is not killed", "Nothing to do.", 409, checks)
    if spec.adds_risk and killed:
        return _deny("BOT_KILLED", f"bot is {bot.kill_state.value}",
                     "Resurrect the bot (POST /api/bots/{id}/resurrect) first.", 409, checks)
    enabling = act is Action.TRADING_TOGGLE and bool(params.get("enabled"))
    if enabling and killed:
        return _deny("BOT_KILLED", f"bot is {bot.kill_state.value}",
                     "Resurrect the bot first.", 409, checks)
    checks.append("kill_state")
    if bot.stage is Stage.RETIRED and act not in (Action.BOT_DELETE, Action.KILL):
        return _deny("BOT_RETIRED", "bot is retired; RETIRED is terminal",
                     "Create a new bot instead.", 409, checks)
    checks.append("retired")
    stage_denial = _stage_rules(act, bot)
    if stage_denial is not None:
        code, message, fix = stage_denial
        return _deny(code, message, fix, 409, checks)
    checks.append("stage")
    needs_step_up = (
        enabling
        or (act is Action.RESURRECT and bot.kill_state is KillState.QUARANTINED)
        or (act is Action.RISK_CONFIG_UPDATE and bool(params.get("loosens_risk"))
            and bot.stage in REAL_MONEY_STAGES)
        or (act is Action.BOT_UPDATE and bool(params.get("loosens_risk"))
            and bot.stage in REAL_MONEY_STAGES)
    )
    if needs_step_up and not step_up:
        return _step_up_denial(checks)
    if (act in (Action.RUNNER_START, Action.RUNNER_RESTART) and bot.stage in REAL_MONEY_STAGES
            and not bot.is_trading_enabled):
        return _deny("LIVE_TRADING_DISABLED",
                     f"live trading is OFF for this {bot.stage.value} bot",
                     'Enable it with POST /api/bots/{id}/trading {"enabled": true} '
                     "(2FA step-up).",
                     409, checks)
    checks.append("live_trading")
    return None


def _stage_rules(act: Action, bot: BotFacts) -> tuple[str, str, str] | None:
    if act in (Action.RUNNER_START, Action.RUNNER_RESTART) and bot.stage not in RUNNER_STAGES:
        return ("STAGE_NOT_ELIGIBLE", f"a {bot.stage.value} bot has no runner",
                "Graduate the bot to PAPER first (POST /api/bots/{id}/graduate).")
    if act in (Action.PROMOTE_LIVE, Action.APPROVAL_ISSUE) and bot.stage is not Stage.CANARY:
        return ("STAGE_NOT_ELIGIBLE", "only a CANARY bot can be promoted to LIVE",
                "Graduate the bot to CANARY first.")
    if act is Action.GRADUATE and next_stage(bot.stage) in (None, Stage.LIVE):
        return ("STAGE_NOT_ELIGIBLE", f"graduate cannot leave {bot.stage.value}",
                "CANARY -> LIVE goes through POST /api/bots/{id}/promote-live.")
    return None
