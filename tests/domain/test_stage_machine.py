"""The stage machine, exhaustively over every (stage, route, target) and halt combination,
plus random walks: no promotion skips a stage, LIVE only through promote-live, RETIRED is
terminal, demotion is free."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.gates import GateEvaluation, GateResult
from botwarden.domain.stage_machine import (
    Halts,
    Kind,
    Refusal,
    RefusalCode,
    Route,
    Transition,
    decide_transition,
    rank,
)
from botwarden.domain.stages import LADDER, Stage, next_stage

ALL_HALTS = [Halts(k, s) for k in (False, True) for s in (False, True)]


def evaluation(stage: Stage, met: bool) -> GateEvaluation:
    gates = (GateResult("min_trades", 50, 60 if met else 10, met, "trades"),
             GateResult("positive_net_pnl", 0, 10.0, True, "$"))
    return GateEvaluation(stage, next_stage(stage), "standard", gates)


def decide(current: Stage, route: Route, target: Stage | None, met: bool,
           halts: Halts = Halts()) -> Transition | Refusal:
    return decide_transition(current, route, target, evaluation=evaluation(current, met),
                             halts=halts)


CASES = list(itertools.product(Stage, Route, [None, *Stage], [False, True], ALL_HALTS))


@pytest.mark.parametrize("current", list(Stage))
def test_exhaustive_invariants(current: Stage) -> None:
    for stage, route, target, met, halts in CASES:
        if stage is not current:
            continue
        result = decide(stage, route, target, met, halts)
        if stage is Stage.RETIRED:
            assert isinstance(result, Refusal) and result.code is RefusalCode.STAGE_TERMINAL
            continue
        if isinstance(result, Refusal):
            continue
        assert result.from_stage is stage
        if result.kind is Kind.PROMOTION:
            assert rank(result.to_stage) == rank(stage) + 1, "promotion skipped a stage"
            assert met and not halts.killed and not halts.kill_switch_engaged
            assert route is not Route.RETIRE
        if result.to_stage is Stage.LIVE:
            assert route is Route.PROMOTE_LIVE and stage is Stage.CANARY
        if result.kind is Kind.DEMOTION:
            assert rank(result.to_stage) < rank(stage) and route is Route.STAGE_PATCH
        if result.kind is Kind.RETIREMENT:
            assert route is Route.RETIRE and result.to_stage is Stage.RETIRED
        if route is Route.GRADUATE:
            assert result.to_stage is next_stage(stage) and result.to_stage is not Stage.LIVE


@pytest.mark.parametrize("current", LADDER)
def test_demotion_is_free_to_any_lower_stage(current: Stage) -> None:
    for target in LADDER[:rank(current)]:
        for halts in ALL_HALTS:
            result = decide_transition(current, Route.STAGE_PATCH, target, halts=halts)
            assert result == Transition(current, target, Kind.DEMOTION)


@pytest.mark.parametrize("current", LADDER)
def test_any_stage_retires_and_nothing_leaves_retired(current: Stage) -> None:
    assert decide_transition(current, Route.RETIRE) == Transition(current, Stage.RETIRED,
                                                                  Kind.RETIREMENT)
    for route, target in itertools.product(Route, [None, *Stage]):
        result = decide(Stage.RETIRED, route, target, True)
        assert isinstance(result, Refusal) and result.code is RefusalCode.STAGE_TERMINAL


@pytest.mark.parametrize(("current", "target", "code"), [
    (Stage.TRIALS, Stage.SHADOW, RefusalCode.STAGE_SKIP),
    (Stage.TRIALS, Stage.CANARY, RefusalCode.STAGE_SKIP),
    (Stage.PAPER, Stage.CANARY, RefusalCode.STAGE_SKIP),
    (Stage.TRIALS, Stage.LIVE, RefusalCode.USE_PROMOTE_LIVE),
    (Stage.CANARY, Stage.LIVE, RefusalCode.USE_PROMOTE_LIVE),
    (Stage.PAPER, Stage.RETIRED, RefusalCode.USE_RETIRE),
    (Stage.SHADOW, Stage.SHADOW, RefusalCode.STAGE_UNCHANGED),
    (Stage.LIVE, Stage.LIVE, RefusalCode.STAGE_UNCHANGED),
])
def test_patch_refusals(current: Stage, target: Stage, code: RefusalCode) -> None:
    result = decide(current, Route.STAGE_PATCH, target, True)
    assert isinstance(result, Refusal) and result.code is code and result.fix


@pytest.mark.parametrize("current", [Stage.CANARY, Stage.LIVE])
def test_graduate_never_reaches_live(current: Stage) -> None:
    result = decide(current, Route.GRADUATE, None, True)
    assert isinstance(result, Refusal) and result.code is RefusalCode.STAGE_NOT_ELIGIBLE


@pytest.mark.parametrize("current", [s for s in Stage if s not in (Stage.CANARY,
                                                                    Stage.RETIRED)])
def test_promote_live_only_from_canary(current: Stage) -> None:
    result = decide(current, Route.PROMOTE_LIVE, None, True)
    assert isinstance(result, Refusal) and result.code is RefusalCode.STAGE_NOT_ELIGIBLE


def test_promote_live_from_canary_with_gates() -> None:
    assert decide(Stage.CANARY, Route.PROMOTE_LIVE, None, True) == Transition(
        Stage.CANARY, Stage.LIVE, Kind.PROMOTION)


def test_gates_not_met_lists_the_failing_gates() -> None:
    result = decide(Stage.TRIALS, Route.GRADUATE, None, False)
    assert isinstance(result, Refusal) and result.code is RefusalCode.GATES_NOT_MET
    assert [g.id for g in result.failing_gates] == ["min_trades"]
    error = result.as_error()
    assert error.status == 409 and error.code == "GATES_NOT_MET"
    assert error.details["gates"][0] == {"id": "min_trades", "required": 50, "actual": 10,
                                         "passed": False, "unit": "trades", "detail": ""}


def test_promotion_without_evaluation_fails_closed() -> None:
    result = decide_transition(Stage.TRIALS, Route.GRADUATE)
    assert isinstance(result, Refusal) and result.code is RefusalCode.GATES_NOT_MET
    stale = decide_transition(Stage.PAPER, Route.GRADUATE,
                              evaluation=evaluation(Stage.TRIALS, True))
    assert isinstance(stale, Refusal) and stale.code is RefusalCode.GATES_NOT_MET


@pytest.mark.parametrize(("halts", "code"), [
    (Halts(killed=True), RefusalCode.BOT_KILLED),
    (Halts(kill_switch_engaged=True), RefusalCode.ACCOUNT_KILL_SWITCH_ENGAGED),
])
def test_halted_bots_are_not_promoted(halts: Halts, code: RefusalCode) -> None:
    result = decide(Stage.PAPER, Route.STAGE_PATCH, Stage.SHADOW, True, halts)
    assert isinstance(result, Refusal) and result.code is code


@pytest.mark.parametrize(("current", "target", "leaves"), [
    (Stage.LIVE, Stage.CANARY, False),
    (Stage.LIVE, Stage.PAPER, True),
    (Stage.CANARY, Stage.SHADOW, True),
    (Stage.SHADOW, Stage.PAPER, False),
    (Stage.PAPER, Stage.TRIALS, True),
    (Stage.TRIALS, Stage.RETIRED, True),
    (Stage.PAPER, Stage.SHADOW, False),
])
def test_which_changes_stop_the_runners(current: Stage, target: Stage, leaves: bool) -> None:
    route = Route.RETIRE if target is Stage.RETIRED else Route.STAGE_PATCH
    result = decide(current, route, target, True)
    assert isinstance(result, Transition) and result.leaves_the_runner_venue is leaves


STEPS = st.tuples(st.sampled_from(Route), st.none() | st.sampled_from(Stage), st.booleans(),
                  st.sampled_from(ALL_HALTS))


@given(st.lists(STEPS, max_size=40))
def test_random_walks_climb_one_step_at_a_time(steps: list[tuple[Route, Stage | None, bool,
                                                                   Halts]]) -> None:
    stage = Stage.TRIALS
    for route, target, met, halts in steps:
        result = decide(stage, route, target, met, halts)
        if isinstance(result, Refusal):
            continue
        if result.to_stage is not Stage.RETIRED and rank(result.to_stage) > rank(stage):
            assert rank(result.to_stage) == rank(stage) + 1
        if result.to_stage is Stage.LIVE:
            assert route is Route.PROMOTE_LIVE and stage is Stage.CANARY and met
        if stage is Stage.RETIRED:
            pytest.fail("a retired bot changed stage")
        stage = result.to_stage
