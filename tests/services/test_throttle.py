"""Attempt throttling in the login_failures table: window, Retry-After, release, concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from botwarden.services import throttle
from botwarden.store.models import LoginFailure

LIMIT = throttle.Limit(max_failures=3, window=timedelta(minutes=5))
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(LoginFailure)) or 0)


def test_the_window_admits_max_failures_then_names_the_wait(engine: Engine) -> None:
    for minute in range(3):
        throttle.reserve(engine, ["k"], LIMIT, T0 + timedelta(minutes=minute))
    now = T0 + timedelta(minutes=3, seconds=10)
    with pytest.raises(throttle.TooManyAttempts) as refused:
        throttle.reserve(engine, ["k"], LIMIT, now)
    assert refused.value.status == 429 and refused.value.code == "RATE_LIMITED"
    assert refused.value.headers == {"Retry-After": "110"}  # T0 + 5 min - now
    assert count(engine) == 3  # the refused attempt left no row
    throttle.reserve(engine, ["other-key"], LIMIT, now)  # keys are counted separately
    throttle.reserve(engine, ["k"], LIMIT, T0 + timedelta(minutes=5))  # T0's failure expired
    with pytest.raises(throttle.TooManyAttempts) as again:
        throttle.reserve(engine, ["k"], LIMIT, T0 + timedelta(minutes=5))
    assert again.value.headers == {"Retry-After": "60"}


def test_one_key_over_its_limit_refuses_the_attempt_for_all(engine: Engine) -> None:
    for _ in range(3):
        throttle.reserve(engine, ["email", f"address-{_}"], LIMIT, T0)
    with pytest.raises(throttle.TooManyAttempts):
        throttle.reserve(engine, ["email", "address-fresh"], LIMIT, T0)
    throttle.reserve(engine, ["address-fresh"], LIMIT, T0)


def test_release_counts_only_when_its_transaction_commits(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    rolled_back = throttle.reserve(engine, ["k"], LIMIT, T0)
    with session_factory() as session:
        rolled_back.release_in(session)
        session.rollback()
    assert count(engine) == 1
    committed = throttle.reserve(engine, ["k"], LIMIT, T0)
    with session_factory() as session:
        committed.release_in(session)
        session.commit()
    assert count(engine) == 1
    throttle.reserve(engine, ["k"], LIMIT, T0).cancel()
    assert count(engine) == 1
    with session_factory() as session:
        throttle.forgive(session, "k")
        session.commit()
    assert count(engine) == 0


def test_concurrent_attempts_never_exceed_the_limit(engine: Engine) -> None:
    def attempt(_: int) -> bool:
        try:
            throttle.reserve(engine, ["burst"], LIMIT, T0)
        except throttle.TooManyAttempts:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(attempt, range(24)))
    # Refusing a few too many under contention is the safe side; admitting more is not.
    assert admitted <= LIMIT.max_failures
    assert count(engine) == admitted
    assert attempt(0) is (admitted < LIMIT.max_failures)
