"""The safe-start checks: each refusal with its code, status and fix, and the order in which
they are applied (the first failing check decides, whatever else fails)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.errors import DomainError
from botwarden.domain.kill import KillState
from botwarden.domain.safe_start import (
    RunnerMode,
    StartCheck,
    StartFacts,
    check_start,
    mode_for_stage,
)
from botwarden.domain.stages import Stage

OPEN_UNTIL = datetime(2026, 3, 2, 15, 15, tzinfo=UTC)


def ready(stage: Stage = Stage.PAPER, **changes: object) -> StartFacts:
    """Facts under which a runner may start; `changes` break one thing at a time."""
    facts = StartFacts(
        bot_id="bot1", symbol="MES", kill_state=KillState.NONE,
        account_kill_switch_engaged=False, stage=stage, is_trading_enabled=True,
        provider="replay", provider_configured=True, provider_down=False,
        broker_configured=True, broker_down=False, data_available=True, dead_loops=(),
        breaker_open_until=None)
    return replace(facts, **changes)  # type: ignore[arg-type]


def refusal_of(facts: StartFacts) -> tuple[str, int, StartCheck]:
    verdict = check_start(facts)
    assert verdict.refusal is not None, "expected a refusal"
    return verdict.refusal.code, verdict.refusal.status, verdict.refusal.check


@pytest.mark.parametrize("stage", [Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE])
def test_a_ready_bot_passes_every_check_in_order(stage: Stage) -> None:
    verdict = check_start(ready(stage))
    assert verdict.allowed and verdict.refusal is None
    assert verdict.passed == tuple(StartCheck)
    verdict.raise_if_refused()  # does nothing


@pytest.mark.parametrize(("changes", "expected"), [
    ({"account_kill_switch_engaged": True}, ("BOT_KILLED", 409, StartCheck.KILL_STATE)),
    ({"kill_state": KillState.SOFT_KILLED}, ("BOT_KILLED", 409, StartCheck.KILL_STATE)),
    ({"kill_state": KillState.HARD_KILLED}, ("BOT_KILLED", 409, StartCheck.KILL_STATE)),
    ({"kill_state": KillState.QUARANTINED}, ("BOT_KILLED", 409, StartCheck.KILL_STATE)),
    ({"stage": Stage.TRIALS}, ("STAGE_NOT_ELIGIBLE", 409, StartCheck.STAGE)),
    ({"stage": Stage.RETIRED}, ("STAGE_NOT_ELIGIBLE", 409, StartCheck.STAGE)),
    ({"stage": Stage.CANARY, "is_trading_enabled": False},
     ("LIVE_TRADING_DISABLED", 409, StartCheck.LIVE_TRADING)),
    ({"stage": Stage.LIVE, "is_trading_enabled": False},
     ("LIVE_TRADING_DISABLED", 409, StartCheck.LIVE_TRADING)),
    ({"stage": Stage.CANARY, "broker_configured": False},
     ("INTEGRATION_KEY_MISSING", 424, StartCheck.INTEGRATIONS)),
    ({"stage": Stage.LIVE, "broker_down": True},
     ("INTEGRATION_KEY_MISSING", 424, StartCheck.INTEGRATIONS)),
    ({"provider": "databento", "provider_configured": False},
     ("INTEGRATION_KEY_MISSING", 424, StartCheck.INTEGRATIONS)),
    ({"provider_down": True}, ("DATA_UNAVAILABLE", 424, StartCheck.AUTONOMY)),
    ({"data_available": False}, ("DATA_UNAVAILABLE", 424, StartCheck.AUTONOMY)),
    ({"dead_loops": ("supervisor",)}, ("AUTONOMY_BLOCKED", 409, StartCheck.AUTONOMY)),
    ({"breaker_open_until": OPEN_UNTIL}, ("CIRCUIT_OPEN", 409, StartCheck.CIRCUIT_BREAKER)),
])
def test_each_refusal_has_its_code_status_and_a_fix(
    changes: dict[str, object], expected: tuple[str, int, StartCheck]
) -> None:
    facts = ready(**changes)  # type: ignore[arg-type]
    assert refusal_of(facts) == expected
    refusal = check_start(facts).refusal
    assert refusal is not None and refusal.message and len(refusal.fix) > 20
    with pytest.raises(DomainError) as raised:
        check_start(facts).raise_if_refused()
    assert (raised.value.code, raised.value.status, raised.value.fix) == (
        expected[0], expected[1], refusal.fix)
    assert raised.value.details == {"check": expected[2].value}


def test_simulated_stages_need_neither_the_live_flag_nor_the_real_broker() -> None:
    for stage in (Stage.PAPER, Stage.SHADOW):
        facts = ready(stage, is_trading_enabled=False, broker_configured=False, broker_down=True)
        assert check_start(facts).allowed


def test_fixes_name_what_to_do() -> None:
    def fix(**changes: object) -> str:
        refusal = check_start(ready(**changes)).refusal  # type: ignore[arg-type]
        assert refusal is not None
        return refusal.fix

    assert "/api/bots/bot1/resurrect" in fix(kill_state=KillState.HARD_KILLED)
    assert "step-up" in fix(kill_state=KillState.QUARANTINED)
    assert "/api/kill-switch/release" in fix(account_kill_switch_engaged=True)
    assert "/api/bots/bot1/graduate" in fix(stage=Stage.TRIALS)
    assert "POST /api/bots" in fix(stage=Stage.RETIRED)
    assert "/api/bots/bot1/trading" in fix(stage=Stage.LIVE, is_trading_enabled=False)
    assert "BOTWARDEN_TRADOVATE_USERNAME" in fix(stage=Stage.CANARY, broker_configured=False)
    assert "botwarden data synth --symbol MES" in fix(data_available=False)
    assert "/api/integrations/replay/verify" in fix(provider_down=True)
    assert "GET /api/scheduler" in fix(dead_loops=("timeout_worker",))
    assert OPEN_UNTIL.isoformat() in fix(breaker_open_until=OPEN_UNTIL)


def test_the_account_switch_is_reported_before_the_bots_own_kill() -> None:
    refusal = check_start(ready(account_kill_switch_engaged=True,
                                kill_state=KillState.HARD_KILLED)).refusal
    assert refusal is not None and "kill switch" in refusal.message


def test_modes_and_brokers() -> None:
    assert [mode_for_stage(s) for s in (Stage.PAPER, Stage.SHADOW, Stage.CANARY, Stage.LIVE)] \
        == [RunnerMode.PAPER, RunnerMode.SHADOW, RunnerMode.CANARY, RunnerMode.LIVE]
    assert {m: m.broker for m in RunnerMode} == {
        RunnerMode.PAPER: "paper", RunnerMode.SHADOW: "shadow",
        RunnerMode.CANARY: "tradovate", RunnerMode.LIVE: "tradovate"}
    for stage in (Stage.TRIALS, Stage.RETIRED):
        with pytest.raises(DomainError) as raised:
            mode_for_stage(stage)
        assert raised.value.code == "STAGE_NOT_ELIGIBLE"


# --- the order, for any combination of failures --------------------------------------------

# An oracle written apart from the implementation: each check as a plain predicate on the
# facts ("it fails"), in the order of the spec.
ORACLE: list[tuple[str, object]] = [
    ("BOT_KILLED", lambda f: f.account_kill_switch_engaged or f.kill_state != KillState.NONE),
    ("STAGE_NOT_ELIGIBLE", lambda f: f.stage in (Stage.TRIALS, Stage.RETIRED)),
    ("LIVE_TRADING_DISABLED",
     lambda f: f.stage in (Stage.CANARY, Stage.LIVE) and not f.is_trading_enabled),
    ("INTEGRATION_KEY_MISSING",
     lambda f: (f.stage in (Stage.CANARY, Stage.LIVE)
                and (not f.broker_configured or f.broker_down)) or not f.provider_configured),
    ("DATA_UNAVAILABLE", lambda f: f.provider_down or not f.data_available),
    ("AUTONOMY_BLOCKED", lambda f: bool(f.dead_loops)),
    ("CIRCUIT_OPEN", lambda f: f.breaker_open_until is not None),
]

facts_strategy = st.builds(
    StartFacts,
    bot_id=st.just("bot1"),
    symbol=st.sampled_from(["MES", "MNQ"]),
    kill_state=st.sampled_from(list(KillState)),
    account_kill_switch_engaged=st.booleans(),
    stage=st.sampled_from(list(Stage)),
    is_trading_enabled=st.booleans(),
    provider=st.sampled_from(["replay", "databento"]),
    provider_configured=st.booleans(),
    provider_down=st.booleans(),
    broker_configured=st.booleans(),
    broker_down=st.booleans(),
    data_available=st.booleans(),
    dead_loops=st.lists(st.sampled_from(["supervisor", "timeout_worker"]), unique=True,
                        max_size=2).map(tuple),
    breaker_open_until=st.one_of(st.none(), st.just(OPEN_UNTIL)),
)


@given(facts_strategy)
def test_the_verdict_is_always_the_first_failing_check(facts: StartFacts) -> None:
    failing = [code for code, fails in ORACLE if fails(facts)]  # type: ignore[operator]
    verdict = check_start(facts)
    if not failing:
        assert verdict.allowed and verdict.passed == tuple(StartCheck)
        return
    assert verdict.refusal is not None and verdict.refusal.code == failing[0]
    # Every check before the deciding one passed, and none after it ran.
    assert verdict.passed == tuple(StartCheck)[:tuple(StartCheck).index(verdict.refusal.check)]
