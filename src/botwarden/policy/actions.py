"""Every action a mutating route can declare, with what the policy needs to know of it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from botwarden.domain.trading import Role


class Action(StrEnum):
    AUTH_REGISTER = "AUTH_REGISTER"
    AUTH_LOGIN = "AUTH_LOGIN"
    AUTH_LOGOUT = "AUTH_LOGOUT"
    TOTP_SETUP = "TOTP_SETUP"
    TOTP_VERIFY = "TOTP_VERIFY"
    USER_MANAGE = "USER_MANAGE"
    POLICY_DRY_RUN = "POLICY_DRY_RUN"
    BOT_CREATE = "BOT_CREATE"
    BOT_UPDATE = "BOT_UPDATE"
    BOT_DELETE = "BOT_DELETE"
    STAGE_CHANGE = "STAGE_CHANGE"
    GRADUATE = "GRADUATE"
    PROMOTE_LIVE = "PROMOTE_LIVE"
    APPROVAL_ISSUE = "APPROVAL_ISSUE"
    RETIRE = "RETIRE"
    RISK_CONFIG_UPDATE = "RISK_CONFIG_UPDATE"
    TRADING_TOGGLE = "TRADING_TOGGLE"
    KILL = "KILL"
    RESURRECT = "RESURRECT"
    KILL_SWITCH = "KILL_SWITCH"
    KILL_SWITCH_RELEASE = "KILL_SWITCH_RELEASE"
    RUNNER_START = "RUNNER_START"
    RUNNER_RESTART = "RUNNER_RESTART"
    RUNNER_STOP = "RUNNER_STOP"
    RECONCILE = "RECONCILE"
    JOB_CANCEL = "JOB_CANCEL"
    JOB_HEARTBEAT = "JOB_HEARTBEAT"
    JOBS_TIMEOUT_STALE = "JOBS_TIMEOUT_STALE"
    SCHEDULER_TRIGGER = "SCHEDULER_TRIGGER"
    RESEARCH_RUN = "RESEARCH_RUN"
    EVOLUTION_TRIGGER = "EVOLUTION_TRIGGER"
    INTEGRATION_VERIFY = "INTEGRATION_VERIFY"
    PORTFOLIO_REBALANCE = "PORTFOLIO_REBALANCE"


class Target(StrEnum):
    NONE = "none"  # acts on the caller's own account or session
    BOT = "bot"  # acts on one bot, which must belong to the caller's account


@dataclass(frozen=True, slots=True)
class ActionSpec:
    min_role: Role | None  # None: a public action (no principal, e.g. login)
    target: Target = Target.NONE
    # Raises exposure or the bot's autonomy: refused while killed or under the kill switch.
    adds_risk: bool = False
    always_step_up: bool = False
    rate_limited: bool = True


_V, _T, _A = Role.VIEWER, Role.TRADER, Role.ADMIN

SPECS: dict[Action, ActionSpec] = {
    Action.AUTH_REGISTER: ActionSpec(None),
    Action.AUTH_LOGIN: ActionSpec(None),
    Action.AUTH_LOGOUT: ActionSpec(_V, rate_limited=False),
    Action.TOTP_SETUP: ActionSpec(_V),
    Action.TOTP_VERIFY: ActionSpec(_V),
    Action.USER_MANAGE: ActionSpec(_A),
    Action.POLICY_DRY_RUN: ActionSpec(_V),
    Action.BOT_CREATE: ActionSpec(_T),
    Action.BOT_UPDATE: ActionSpec(_T, Target.BOT),
    Action.BOT_DELETE: ActionSpec(_T, Target.BOT),
    Action.STAGE_CHANGE: ActionSpec(_T, Target.BOT),
    Action.GRADUATE: ActionSpec(_T, Target.BOT, adds_risk=True),
    Action.PROMOTE_LIVE: ActionSpec(_T, Target.BOT, adds_risk=True, always_step_up=True),
    Action.APPROVAL_ISSUE: ActionSpec(_T, Target.BOT, adds_risk=True, always_step_up=True),
    Action.RETIRE: ActionSpec(_T, Target.BOT),
    Action.RISK_CONFIG_UPDATE: ActionSpec(_A, Target.BOT),
    Action.TRADING_TOGGLE: ActionSpec(_T, Target.BOT),
    Action.KILL: ActionSpec(_T, Target.BOT),
    Action.RESURRECT: ActionSpec(_T, Target.BOT),
    Action.KILL_SWITCH: ActionSpec(_A),
    Action.KILL_SWITCH_RELEASE: ActionSpec(_A, always_step_up=True),
    Action.RUNNER_START: ActionSpec(_T, Target.BOT, adds_risk=True),
    Action.RUNNER_RESTART: ActionSpec(_T, Target.BOT, adds_risk=True),
    Action.RUNNER_STOP: ActionSpec(_T, Target.BOT),
    Action.RECONCILE: ActionSpec(_T, Target.BOT),
    Action.JOB_CANCEL: ActionSpec(_T),
    Action.JOB_HEARTBEAT: ActionSpec(_T, rate_limited=False),
    Action.JOBS_TIMEOUT_STALE: ActionSpec(_A),
    Action.SCHEDULER_TRIGGER: ActionSpec(_A),
    Action.RESEARCH_RUN: ActionSpec(_T),
    Action.EVOLUTION_TRIGGER: ActionSpec(_T, Target.BOT),
    Action.INTEGRATION_VERIFY: ActionSpec(_A),
    Action.PORTFOLIO_REBALANCE: ActionSpec(_T),
}

ROLE_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.ADMIN: 2}
