"""The per-bot circuit breaker: 3 failures within 30 minutes open it, 15 minutes later it
half-opens, a failure then reopens it, and quiet time closes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from botwarden.domain.circuit_breaker import Breaker, BreakerPolicy, BreakerState, opened_by

T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
POLICY = BreakerPolicy(3, timedelta(minutes=30), timedelta(minutes=15))
M = timedelta(minutes=1)


def fail_at(breaker: Breaker, *minutes: float) -> Breaker:
    for m in minutes:
        breaker = breaker.record_failure(T0 + m * M, POLICY)
    return breaker


def test_three_failures_within_the_window_open_it() -> None:
    two = fail_at(Breaker(), 0, 10)
    assert two.state(T0 + 10 * M, POLICY) is BreakerState.CLOSED
    three = fail_at(two, 29)
    assert opened_by(two, three, T0 + 29 * M, POLICY)
    assert three.state(T0 + 29 * M, POLICY) is BreakerState.OPEN
    assert not three.allows_restart(T0 + 43 * M, POLICY)


def test_failures_spread_wider_than_the_window_do_not() -> None:
    spread = fail_at(Breaker(), 0, 20, 31, 52)
    assert spread.state(T0 + 52 * M, POLICY) is BreakerState.CLOSED
    assert len(spread.settle(T0 + 52 * M, POLICY).failures) == 2


def test_half_open_then_reopen_or_close() -> None:
    opened = fail_at(Breaker(), 0, 1, 2)
    assert opened.state(T0 + 16 * M, POLICY) is BreakerState.OPEN
    assert opened.state(T0 + 17 * M, POLICY) is BreakerState.HALF_OPEN
    assert opened.allows_restart(T0 + 17 * M, POLICY)
    reopened = fail_at(opened, 18)  # the trial restart failed: open again at once
    assert opened_by(opened, reopened, T0 + 18 * M, POLICY)
    assert reopened.state(T0 + 32 * M, POLICY) is BreakerState.OPEN
    # A trial that survives until every failure has left the window closes it.
    assert opened.state(T0 + 32 * M, POLICY) is BreakerState.CLOSED
    assert opened.settle(T0 + 32 * M, POLICY) == Breaker()


@given(st.lists(st.floats(0, 600, allow_nan=False), max_size=30))
def test_it_opens_exactly_when_three_fall_within_the_window(gaps: list[float]) -> None:
    """Replaying failures in time order against a simple reference of the rule."""
    breaker, now = Breaker(), T0
    history: list[datetime] = []
    for gap in gaps:
        now += gap * M / 10
        state = breaker.state(now, POLICY)
        recent = [t for t in history if now - t < POLICY.window]
        before = breaker
        breaker = breaker.record_failure(now, POLICY)
        history.append(now)
        if state is BreakerState.CLOSED:
            assert opened_by(before, breaker, now, POLICY) == (len(recent) + 1 >= 3)
        elif state is BreakerState.HALF_OPEN:
            assert opened_by(before, breaker, now, POLICY)
        assert breaker.state(now, POLICY) is not BreakerState.HALF_OPEN
