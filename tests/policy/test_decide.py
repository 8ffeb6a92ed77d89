"""The pure action policy: fail closed, first failing check decides, every denial has a
reason code and a fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.kill import KillState
from botwarden.domain.stages import Stage
from botwarden.domain.trading import Role
from botwarden.policy import AccountFacts, Action, ActorFacts, BotFacts, decide
from botwarden.policy.actions import SPECS, Target

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
ADMIN = ActorFacts("u1", "a1", Role.ADMIN, None)
STEPPED = ActorFacts("u1", "a1", Role.ADMIN, NOW + timedelta(minutes=1))
ACCOUNT = AccountFacts("a1", False)


def bot(stage: Stage = Stage.PAPER, kill: KillState = KillState.NONE, trading: bool = False,
        account: str = "a1") -> BotFacts:
    return BotFacts("b1", account, stage, kill, trading)


def test_unknown_action_and_missing_actor_deny() -> None:
    assert decide("DROP_TABLES", ADMIN, now=NOW).reason_code == "UNKNOWN_ACTION"
    assert decide("KILL", None, bot=bot(), now=NOW).reason_code == "UNAUTHENTICATED"


def test_other_accounts_bot_is_not_found() -> None:
    decision = decide("KILL", ADMIN, account=ACCOUNT, bot=bot(account="a2"), now=NOW)
    assert (decision.allowed, decision.reason_code, decision.status) == (False, "NOT_FOUND", 404)
    assert decide("KILL", ADMIN, account=ACCOUNT, bot=None, now=NOW).reason_code == "NOT_FOUND"


@pytest.mark.parametrize(("action", "facts", "actor", "code"), [
    ("RUNNER_START", bot(kill=KillState.HARD_KILLED), ADMIN, "BOT_KILLED"),
    ("RUNNER_START", bot(stage=Stage.TRIALS), ADMIN, "STAGE_NOT_ELIGIBLE"),
    ("RUNNER_START", bot(stage=Stage.CANARY), ADMIN, "LIVE_TRADING_DISABLED"),
    ("PROMOTE_LIVE", bot(stage=Stage.CANARY), ADMIN, "STEP_UP_REQUIRED"),
    ("PROMOTE_LIVE", bot(stage=Stage.SHADOW), STEPPED, "STAGE_NOT_ELIGIBLE"),
    ("GRADUATE", bot(stage=Stage.CANARY), ADMIN, "STAGE_NOT_ELIGIBLE"),
    ("KILL", bot(kill=KillState.SOFT_KILLED), ADMIN, "ALREADY_KILLED"),
    ("RESURRECT", bot(), ADMIN, "NOT_KILLED"),
    ("RESURRECT", bot(kill=KillState.QUARANTINED), ADMIN, "STEP_UP_REQUIRED"),
    ("BOT_UPDATE", bot(stage=Stage.RETIRED), ADMIN, "BOT_RETIRED"),
])
def test_denials(action: str, facts: BotFacts, actor: ActorFacts, code: str) -> None:
    decision = decide(action, actor, account=ACCOUNT, bot=facts, now=NOW)
    assert not decision.allowed and decision.reason_code == code and decision.fix


def test_step_up_expires() -> None:
    expired = ActorFacts("u1", "a1", Role.ADMIN, NOW - timedelta(seconds=1))
    facts = bot(stage=Stage.CANARY)
    assert decide("PROMOTE_LIVE", STEPPED, account=ACCOUNT, bot=facts, now=NOW).allowed
    assert not decide("PROMOTE_LIVE", expired, account=ACCOUNT, bot=facts, now=NOW).allowed


def test_enabling_live_trading_needs_step_up_disabling_does_not() -> None:
    on = decide("TRADING_TOGGLE", ADMIN, account=ACCOUNT, bot=bot(), params={"enabled": True},
                now=NOW)
    off = decide("TRADING_TOGGLE", ADMIN, account=ACCOUNT, bot=bot(), params={"enabled": False},
                 now=NOW)
    assert on.reason_code == "STEP_UP_REQUIRED" and off.allowed


def test_kill_switch_blocks_risk_adding_actions_only() -> None:
    engaged = AccountFacts("a1", True)
    assert decide("RUNNER_START", ADMIN, account=engaged, bot=bot(), now=NOW).reason_code == (
        "ACCOUNT_KILL_SWITCH_ENGAGED")
    assert decide("RUNNER_STOP", ADMIN, account=engaged, bot=bot(), now=NOW).allowed


@given(action=st.sampled_from(list(Action)), role=st.sampled_from(list(Role)),
       stage=st.sampled_from(list(Stage)), kill=st.sampled_from(list(KillState)),
       trading=st.booleans(), stepped=st.booleans(), engaged=st.booleans())
def test_no_allowed_decision_breaks_a_rule(action: Action, role: Role, stage: Stage,
                                           kill: KillState, trading: bool, stepped: bool,
                                           engaged: bool) -> None:
    actor = ActorFacts("u", "a1", role, NOW + timedelta(minutes=1) if stepped else None)
    spec = SPECS[action]
    facts = bot(stage, kill, trading) if spec.target is Target.BOT else None
    decision = decide(action.value, actor, account=AccountFacts("a1", engaged), bot=facts, now=NOW)
    if not decision.allowed:
        assert decision.reason_code and decision.fix and decision.status >= 400
        return
    if spec.adds_risk:
        assert kill is KillState.NONE and not engaged
    if spec.always_step_up:
        assert stepped
    if action in (Action.RUNNER_START, Action.RUNNER_RESTART):
        assert stage in (Stage.PAPER, Stage.SHADOW) or trading
