"""The job state machine, retries and heartbeat timeouts, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from botwarden.domain.job_machine import (
    ENTRY,
    HELD,
    TRANSITIONS,
    DeadLetter,
    IllegalTransition,
    Retry,
    RetryPolicy,
    after_failure,
    backoff_delay,
    check_transition,
    is_heartbeat_stale,
)
from botwarden.domain.jobs import NEEDS_REASON, TERMINAL, JobStatus, JobType

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
DEFAULT = RetryPolicy((timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=8)), 0.2)
statuses = st.sampled_from(list(JobStatus))
reasons = st.one_of(st.none(), st.sampled_from(["HEARTBEAT_TIMEOUT", "LEASE_EXPIRED"]))


def test_terminal_states_are_final() -> None:
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
        for target in JobStatus:
            with pytest.raises(IllegalTransition) as raised:
                check_transition(status, target, "ANY")
            assert raised.value.code == "JOB_TERMINAL"


def test_every_live_state_can_end() -> None:
    """From any non-terminal state some path reaches a terminal one (nothing is stuck)."""
    for start in set(JobStatus) - TERMINAL:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & TERMINAL, start


@given(statuses, reasons)
def test_creation_only_into_entry_states(target: JobStatus, reason: str | None) -> None:
    if target in ENTRY:
        assert check_transition(None, target, reason).from_status is None
    else:
        with pytest.raises(IllegalTransition):
            check_transition(None, target, reason)


@given(statuses, statuses, reasons)
def test_check_transition_agrees_with_the_table(
    current: JobStatus, target: JobStatus, reason: str | None
) -> None:
    allowed = target in TRANSITIONS[current] and (target not in NEEDS_REASON or reason)
    if allowed:
        t = check_transition(current, target, reason)
        assert t.ends_job == (target in TERMINAL) and t.keeps_lease == (target in HELD)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(current, target, reason)


class JobLife(RuleBasedStateMachine):
    """Random attempted transitions on one job: the job never leaves a terminal state,
    never lands where the machine forbids, and every accepted change is in its trail."""

    def __init__(self) -> None:
        super().__init__()
        self.status = JobStatus.QUEUED
        self.trail = [check_transition(None, JobStatus.QUEUED)]
        self.refused = 0

    @rule(to=statuses, reason=reasons)
    def attempt(self, to: JobStatus, reason: str | None) -> None:
        target = to
        before = self.status
        try:
            t = check_transition(before, target, reason)
        except IllegalTransition:
            self.refused += 1
            assert (before in TERMINAL or target not in TRANSITIONS[before]
                    or (target in NEEDS_REASON and not reason))
            return
        self.trail.append(t)
        self.status = target

    @invariant()
    def trail_is_unbroken(self) -> None:
        assert self.trail[0].from_status is None
        for prev, nxt in zip(self.trail, self.trail[1:], strict=False):
            assert nxt.from_status == prev.to_status
            assert nxt.to_status in TRANSITIONS[prev.to_status]
        assert self.trail[-1].to_status == self.status
        terminal = [i for i, t in enumerate(self.trail) if t.to_status in TERMINAL]
        assert terminal in ([], [len(self.trail) - 1])  # at most one ending, and it is last
        assert all(t.reason_code for t in self.trail if t.to_status in NEEDS_REASON)


def test_job_life_state_machine() -> None:
    run_state_machine_as_test(JobLife)


@given(st.integers(1, 10), st.floats(0, 0.999999))
def test_backoff_stays_within_its_jitter(failures: int, draw: float) -> None:
    base = DEFAULT.backoff[min(failures, 3) - 1]
    delay = backoff_delay(failures, DEFAULT, draw)
    assert base * 0.8 <= delay <= base * 1.2


def test_backoff_schedule_without_jitter() -> None:
    policy = RetryPolicy(DEFAULT.backoff, 0.0)
    assert [backoff_delay(n, policy, 0.5) for n in (1, 2, 3, 4)] == [
        timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=8), timedelta(minutes=8)]


def test_three_attempts_then_the_dead_letter() -> None:
    policy = RetryPolicy(DEFAULT.backoff, 0.0)
    first = after_failure(attempts=1, max_attempts=3, attempt_started_at=T0, policy=policy,
                          draw=0.5, why="boom")
    second = after_failure(attempts=2, max_attempts=3, attempt_started_at=T0, policy=policy,
                           draw=0.5, why="boom")
    third = after_failure(attempts=3, max_attempts=3, attempt_started_at=T0, policy=policy,
                          draw=0.5, why="boom")
    assert first == Retry(T0 + timedelta(seconds=30))
    assert second == Retry(T0 + timedelta(minutes=2))
    assert isinstance(third, DeadLetter) and third.reason_code == "MAX_ATTEMPTS_EXCEEDED"
    assert "boom" in third.reason


def test_heartbeat_timeouts_are_per_type() -> None:
    timeouts = {t: timedelta(minutes=30) for t in JobType} | {JobType.RUNNER: timedelta(seconds=30)}
    beat = T0
    assert not is_heartbeat_stale(JobType.RUNNER, beat, T0 + timedelta(seconds=30), timeouts)
    assert is_heartbeat_stale(JobType.RUNNER, beat, T0 + timedelta(seconds=31), timeouts)
    assert not is_heartbeat_stale(JobType.BACKTEST, beat, T0 + timedelta(minutes=29), timeouts)
    assert is_heartbeat_stale(JobType.BACKTEST, beat, T0 + timedelta(minutes=31), timeouts)
