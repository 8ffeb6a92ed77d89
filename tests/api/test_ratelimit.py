"""Rate limits on mutating routes: per caller, server-wide, shared through the database,
429 RATE_LIMITED with Retry-After, and fail-closed when the store breaks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from pyrate_limiter import Rate, RateItem

from botwarden.api.app import create_app
from botwarden.api.ratelimit import DatabaseBucket, RateLimiter
from botwarden.config import Settings
from botwarden.ids import new_id
from botwarden.services.accounts import create_account, issue_token
from tests.api.conftest import VALID_BOT, ApiUser

DRY_RUN = ("/api/action-security", {"action": "BOT_CREATE"})  # a cheap rate-limited mutation


@pytest.fixture
def limited(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """A client on an app with the given limits."""
    clients: list[TestClient] = []

    def make(per_user: int, server: int) -> TestClient:
        app = create_app(settings.model_copy(update={"rate_limit_user_per_minute": per_user,
                                                     "rate_limit_global_per_minute": server}))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
        client.app.state.engine.dispose()  # type: ignore[attr-defined]


def new_user(app: FastAPI) -> ApiUser:
    email = f"{new_id()}@example.com"
    with app.state.session_factory() as session:
        _, user = create_account(session, email, "correct horse battery")
        issued = issue_token(session, user, timedelta(hours=1))
        session.commit()
        return ApiUser(user.id, user.account_id, email, "correct horse battery", issued.token)


def mutate(client: TestClient, user: ApiUser) -> int:
    return client.post(DRY_RUN[0], json=DRY_RUN[1], headers=user.headers).status_code


def assert_rate_limited(response: object, scope: str) -> None:
    assert response.status_code == 429, response.text  # type: ignore[attr-defined]
    retry_after = response.headers["retry-after"]  # type: ignore[attr-defined]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == "RATE_LIMITED" and error["scope"] == scope
    assert error["message"] and error["fix"] and error["trace_id"]
    assert error["trace_id"] == response.headers["x-trace-id"]  # type: ignore[attr-defined]


def test_per_user_limit(limited: Callable[..., TestClient]) -> None:
    client = limited(per_user=3, server=1000)
    alice, bob = new_user(client.app), new_user(client.app)  # type: ignore[arg-type]
    refused_before = REGISTRY.get_sample_value("botwarden_rate_limited_total",
                                               {"scope": "caller"}) or 0.0
    assert [mutate(client, alice) for _ in range(3)] == [200, 200, 200]
    assert_rate_limited(client.post(DRY_RUN[0], json=DRY_RUN[1], headers=alice.headers),
                        "caller")
    assert REGISTRY.get_sample_value("botwarden_rate_limited_total",
                                     {"scope": "caller"}) == refused_before + 1
    # Another user has a bucket of their own; reads are never limited.
    assert mutate(client, bob) == 200
    assert all(client.get("/api/bots", headers=alice.headers).status_code == 200
               for _ in range(5))


def test_refused_mutation_changes_nothing(limited: Callable[..., TestClient]) -> None:
    client = limited(per_user=2, server=1000)
    user = new_user(client.app)  # type: ignore[arg-type]
    bot = client.post("/api/bots", json=VALID_BOT, headers=user.headers).json()
    assert client.patch(f"/api/bots/{bot['id']}", json={"name": "one"},
                        headers=user.headers).status_code == 200
    refused = client.patch(f"/api/bots/{bot['id']}", json={"name": "two"}, headers=user.headers)
    assert_rate_limited(refused, "caller")
    assert client.get(f"/api/bots/{bot['id']}", headers=user.headers).json()["name"] == "one"


def test_server_wide_limit(limited: Callable[..., TestClient]) -> None:
    client = limited(per_user=100, server=3)
    alice, bob = new_user(client.app), new_user(client.app)  # type: ignore[arg-type]
    assert [mutate(client, alice), mutate(client, alice), mutate(client, bob)] == [200] * 3
    assert_rate_limited(client.post(DRY_RUN[0], json=DRY_RUN[1], headers=bob.headers), "global")
    assert mutate(client, alice) == 429


def test_limit_holds_across_threads(limited: Callable[..., TestClient]) -> None:
    client = limited(per_user=7, server=1000)
    user = new_user(client.app)  # type: ignore[arg-type]
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            status = mutate(client, user)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 7 + [429] * 11


def test_store_failure_fails_closed(
    limited: Callable[..., TestClient], capsys: pytest.CaptureFixture[str]
) -> None:
    client = limited(per_user=100, server=1000)
    user = new_user(client.app)  # type: ignore[arg-type]
    bot = client.post("/api/bots", json=VALID_BOT, headers=user.headers).json()
    limiter: RateLimiter = client.app.state.rate_limiter  # type: ignore[attr-defined]
    broken = sa.create_engine("sqlite:////nonexistent-dir/ratelimit.db")
    limiter.factory.engine = broken
    response = client.patch(f"/api/bots/{bot['id']}", json={"name": "sneaky"},
                            headers=user.headers)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "RATE_LIMIT_UNAVAILABLE"
    assert response.headers["retry-after"] == "1"
    assert "rate_limit_store_error" in capsys.readouterr().err
    assert client.get(f"/api/bots/{bot['id']}", headers=user.headers).json()["name"] == "mes-sma"
    broken.dispose()


def test_bucket_window_slides_and_waiting_is_exact(engine: sa.Engine) -> None:
    bucket = DatabaseBucket(engine, f"caller:{new_id()}", Rate(3, 1000))
    assert [bucket.put(RateItem(bucket.name, t)) for t in (0, 10, 20)] == [True] * 3
    late = RateItem(bucket.name, 30)
    assert bucket.put(late) is False and bucket.failing_rate is not None
    assert bucket.waiting(late) == 970  # the hit at 0 expires at 1000
    assert bucket.put(RateItem(bucket.name, 999)) is False
    assert bucket.put(RateItem(bucket.name, 1000)) is True
    assert bucket.count() == 3  # the expired hit was dropped by that put
    assert bucket.peek(0).timestamp == 1000 and bucket.peek(3) is None  # type: ignore[union-attr]
    assert bucket.leak(2100) == 3 and bucket.count() == 0
    other = DatabaseBucket(engine, f"caller:{new_id()}", Rate(3, 1000))
    assert other.put(RateItem(other.name, 2100)) and bucket.count() == 0  # keys are separate
    other.flush()
    assert other.count() == 0


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 4),
       gaps=st.lists(st.integers(0, 700), min_size=1, max_size=15))
def test_bucket_admits_exactly_what_a_sliding_log_would(
    engine: sa.Engine, limit: int, gaps: list[int]
) -> None:
    """Model check: the store agrees with an in-memory sliding log of `limit` per 1000 ms."""
    bucket = DatabaseBucket(engine, f"caller:{new_id()}", Rate(limit, 1000))
    admitted: list[int] = []
    now = 0
    for gap in gaps:
        now += gap
        expected = sum(1 for t in admitted if t > now - 1000) < limit
        assert bucket.put(RateItem(bucket.name, now)) is expected
        if expected:
            admitted.append(now)
    bucket.flush()
